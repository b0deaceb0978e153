"""Lay out an MNIST-like npz archive as torchvision's download cache, so that `source: torchvision` (the paper
profile's) reads it where downloads fail:

    python -m ganad.data.idx_cache data/external/mnist.npz data/cache            # data/cache/MNIST/raw/*-ubyte
    python -m ganad.data.idx_cache fashion.npz data/cache --dataset FashionMNIST

The npz holds uint8 `x_train` (N, 28, 28), `y_train`, `x_test`, `y_test`, as the npz source reads them; the
four files written are the IDX files torchvision's MNIST family unpacks its downloads into (big-endian
header: two zero bytes, the type 0x08 for unsigned bytes, the number of dimensions, each dimension's size), so
torchvision finds them and downloads nothing. Each file is written whole or not at all.
"""

from __future__ import annotations

import struct
from pathlib import Path

import click
import numpy as np

from ganad.errors import DataError, StageError
from ganad.files import load_npz, write_bytes

FILES = {  # torchvision's names for the unpacked files, per array of the npz
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """One uint8 array in the IDX format."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape) + array.tobytes()


def write_cache(npz: Path, cache_dir: Path, dataset: str = "MNIST") -> list[Path]:
    """The npz's four arrays as `cache_dir/<dataset>/raw/*-ubyte`; returns the paths written."""
    arrays = load_npz(npz, keys=list(FILES))
    missing = sorted(set(FILES) - set(arrays))
    if missing:
        raise DataError(f"'{npz}' lacks {missing}: it needs uint8 {sorted(FILES)} (images (N, 28, 28), labels (N,))")
    raw = Path(cache_dir) / dataset / "raw"
    written = []
    for key, name in FILES.items():
        array = arrays[key]
        want = 3 if key.startswith("x") else 1
        if array.ndim != want or array.dtype != np.uint8:
            raise DataError(
                f"'{npz}': {key} is {array.dtype} {array.shape}; torchvision's files hold uint8 with {want} dimensions"
            )
        write_bytes(raw / name, idx_bytes(array))
        written.append(raw / name)
    return written


@click.command()
@click.argument("npz", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("cache_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dataset", default="MNIST", show_default=True, help="torchvision's class (its folder name).")
def main(npz: Path, cache_dir: Path, dataset: str) -> None:
    """Write NPZ's arrays as torchvision's unpacked IDX files under CACHE_DIR/DATASET/raw."""
    try:
        written = write_cache(npz, cache_dir, dataset)
    except StageError as exc:  # one message, no traceback
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
