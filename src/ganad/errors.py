"""The errors ganad raises on purpose: each message names the problem and the fix, and a stage prints it
alone, without a traceback (ganad.runtime.stage)."""


class StageError(Exception):
    """An error ganad raises on purpose, whose message names the problem and the fix: a stage prints it
    alone, without a traceback (ganad.runtime.stage)."""


class MissingInput(StageError, FileNotFoundError):
    """A file that an earlier stage writes is not there; the message names it and the stage that writes it."""


class ParamsError(StageError, ValueError):
    """A params value is invalid; the message names the key, the value and what is allowed."""


class DataError(StageError, ValueError):
    """A data file is missing, corrupt or of the wrong shape; the message says how to fix it."""
