"""How a stage stops on bad input: one line that names the problem and the fix, no traceback.

Every stage script ends with `run(main)`. The errors ganad raises on purpose (`StageError`: bad
params, bad or missing files, a diverged training, a failed job) already say what is wrong and
what to do; a traceback would bury that line, so they are printed alone and the stage exits with
status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from ganad.errors import StageError


def run(command) -> None:
    try:
        command()
    except StageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(2)
