"""Writing and reading the files that stages pass to each other: never half-written, never executed.

Writing: every file goes first to a temporary file of a unique name beside its target
(`.<name>.tmp-<unique>`), is flushed and fsync'ed, then renamed over the target with `os.replace`, so a
kill, a full disk or an exception leaves the old file or the new one, never part of one. Files that
belong together (a prepared dataset's images, labels and meta.json) are written into a temporary folder
beside theirs and swapped in whole (`replace_folder`). A failure removes the temporary file or folder.

Reading: one reader per kind of intermediate file (`read_json`, `load_npy`, `load_npz`, `read_csv`) turns
every way the file can be wrong (missing, truncated, not of its kind, pickled objects) into one
`DataError` or `MissingInput` naming the file, what is wrong and `rebuild`: the command that writes it
again (`dvc repro -f -s <stage>`). Nothing read runs code: npy and npz files are read with
`allow_pickle=False`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from ganad.errors import DataError, MissingInput, StageError

TMP_MARK = ".tmp-"
NO_ROOM = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutOfSpace(StageError, OSError):
    """A file could not be written for want of room; the previous one is kept."""


# --- writing ----------------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs) -> Iterator:
    """An open file whose content replaces `path` only when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)  # left by a writer that was killed
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # numpy reports a short write without an errno ("409600 requested and 99872 written")
        if isinstance(exc, OSError) and (exc.errno in NO_ROOM or (exc.errno is None and "written" in str(exc))):
            raise OutOfSpace(
                f"'{path}' could not be written ({exc.strerror}): the disk or a file-size limit is full; the "
                "previous file is kept. Free some space and run the stage again"
            ) from None
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | Path, value, **dumps) -> Path:
    return write_text(path, json.dumps(value, **{"indent": 2, **dumps}) + "\n")


def save_npy(path: str | Path, array) -> Path:
    import numpy as np

    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return Path(path)


def save_npz(path: str | Path, **arrays) -> Path:
    import numpy as np

    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux's renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def swap_in(tmp: str | Path, path: str | Path) -> None:
    """Put the complete folder `tmp` in `path`'s place, in one step where the system allows (Linux), and
    remove the old folder. Its files are fsync'ed first."""
    tmp, path = Path(tmp), Path(path)
    for file in tmp.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
    if path.is_dir() and _exchange(tmp, path):
        shutil.rmtree(tmp)  # now the old folder
    elif path.is_dir():  # no atomic exchange here: the old folder moves aside for a moment
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def replace_folder(path: str | Path) -> Iterator[Path]:
    """A fresh temporary folder beside `path`, to write into; when the block ends without an error it takes
    `path`'s place whole (`swap_in`). On an error the old folder stays as it was and the temporary one goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)  # left by a writer that was killed
    tmp = path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        yield tmp
        swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | Path, name: str) -> None:
    """Temporary files and folders of `name` left in `folder` by a killed writer."""
    folder = Path(folder)
    if folder.is_dir():
        for stale in folder.glob(f".{name}{TMP_MARK}*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


# --- reading ----------------------------------------------------------------------------------------


def _rebuild(rebuild: str | None) -> str:
    return f"rebuild it with `{rebuild}`" if rebuild else "write it again"


def _require(path: Path, rebuild: str | None) -> None:
    if not path.is_file():
        raise MissingInput(f"'{path}' not found; {_rebuild(rebuild)}")


def _corrupt(path: Path, what: str, rebuild: str | None) -> DataError:
    return DataError(f"'{path}' {what}; {_rebuild(rebuild)}")


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic


def read_json(path: str | Path, rebuild: str | None = None):
    """A JSON file's value."""
    path = Path(path)
    _require(path, rebuild)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"is not valid JSON ({exc})", rebuild) from None


def load_npy(path: str | Path, rebuild: str | None = None, mmap: bool = True):
    """A .npy array (memory-mapped by default), its size checked against its header."""
    import numpy as np

    path = Path(path)
    _require(path, rebuild)
    if not _starts_with(path, b"\x93NUMPY"):
        raise _corrupt(path, "is not a .npy array (it does not start with NumPy's header)", rebuild)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _corrupt(path, f"is not a readable .npy array, truncated or of another format ({exc})", rebuild) from None
    if not isinstance(array, np.ndarray):
        raise _corrupt(path, "is not a single .npy array", rebuild)
    return array


def load_npz(path: str | Path, rebuild: str | None = None, keys: list[str] | None = None) -> dict:
    """The arrays of an .npz archive (all, or `keys`), read in full."""
    import numpy as np

    path = Path(path)
    _require(path, rebuild)
    if not _starts_with(path, b"PK\x03\x04") and not _starts_with(path, b"PK\x05\x06"):
        raise _corrupt(path, "is not an .npz archive (it does not start as a zip file)", rebuild)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            wanted = archive.files if keys is None else [k for k in keys if k in archive.files]
            return {key: archive[key] for key in wanted}
    except Exception as exc:  # zipfile, zlib, pickle and value errors all mean an unreadable file
        raise _corrupt(
            path, f"is not a readable .npz archive, truncated or of another format ({exc})", rebuild
        ) from None


def read_csv(path: str | Path, rebuild: str | None = None, columns: list[str] | None = None, **read):
    """A CSV table; with `columns`, exactly those columns (in any order)."""
    import pandas as pd

    path = Path(path)
    _require(path, rebuild)
    try:
        table = pd.read_csv(path, **read)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _corrupt(path, f"is not a readable CSV table ({' '.join(str(exc).split())})", rebuild) from None
    if columns is not None and sorted(table.columns) != sorted(columns):
        raise _corrupt(path, f"has columns {list(table.columns)}, expected {columns}", rebuild)
    return table
