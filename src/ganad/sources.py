"""Where images come from: every source yields one `RawDataset` of uint8 arrays.

A dataset is declared in params (`data.<name>`: a source and its options); its
channels, image size and class names come from the data. `ganad.loaders` reads each
source (only the fetch stage runs it); this module holds what every stage shares: the
archive format the fetch stage writes (`RawDataset`, `load_npz`), the built-ins, and
`stratified_test_mask`. `mnist` and `cifar10` are built-ins (`BUILTINS`): their names
are reserved for them, since their tables carry the papers' rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import StageError


@dataclass(frozen=True)
class Builtin:
    """A dataset the papers report on: its name is reserved for it, and its tables carry the papers' rows."""

    shape: tuple  # (H, W[, C]) as its official release stores an image
    classes: tuple
    torchvision: str  # the class in torchvision.datasets


BUILTINS = {
    "mnist": Builtin((28, 28), tuple(str(d) for d in range(10)), "MNIST"),
    "cifar10": Builtin((32, 32, 3), ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"), "CIFAR10"),
}
SOURCES = ("embedded", "npz", "torchvision", "folder")

EMBEDDED_TEST_FRACTION = 0.2
EMBEDDED_SPLIT_SEED = 2019


class DataError(StageError, ValueError):
    """A data file is missing, corrupt or of the wrong shape; the message says how to fix it."""


@dataclass
class RawDataset:
    name: str
    x_train: np.ndarray  # uint8, (N, H, W) or (N, H, W, C)
    y_train: np.ndarray  # int64 labels, indices into `classes`
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] = field(default_factory=list)  # class names; empty: "0".."K-1" from the labels

    def validate(self) -> "RawDataset":
        """uint8 images of one shape (grey or colour), labels 0..K-1; a built-in's official shape and classes."""
        builtin = BUILTINS.get(self.name)
        if not self.classes:
            top = max([int(y.max()) for y in (self.y_train, self.y_test) if len(y)], default=-1)
            self.classes = list(builtin.classes) if builtin else [str(c) for c in range(top + 1)]
        self.classes = [str(c) for c in self.classes]
        shape = builtin.shape if builtin else self.x_train.shape[1:]
        if not builtin and (len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3))):
            raise DataError(f"{self.name}: x_train has images of shape {shape}, expected (H, W) grey or (H, W, 1|3)")
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.dtype != np.uint8:
                raise DataError(f"{self.name}: x_{part} has dtype {x.dtype}, expected uint8 pixels in 0..255")
            if x.shape[1:] != shape:
                raise DataError(f"{self.name}: x_{part} has images of shape {x.shape[1:]}, expected {shape}")
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{self.name}: y_{part} has shape {y.shape}, expected ({len(x)},) labels")
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise DataError(
                    f"{self.name}: y_{part} labels span {y.min()}..{y.max()}, expected 0..{len(self.classes) - 1}"
                )
        if not len(self.y_train):
            raise DataError(f"{self.name}: no training images")
        return self

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test,
                 classes=np.array(self.classes, dtype=str))
        tmp.replace(path)


def load_npz(name: str, path: str | Path) -> RawDataset:
    """An archive with uint8 `x_train, y_train, x_test, y_test` and, optionally, `classes` (names)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{name}: npz archive '{path}' does not exist; set data.{name}.npz_path to an archive "
            "holding x_train, y_train, x_test, y_test, or choose another source"
        )
    try:
        # allow_pickle stays False: object arrays are refused, never run. The file is opened here so that it
        # is closed even when numpy fails to read it as a zip (np.load would leave that handle to the GC)
        with open(path, "rb") as handle, np.load(handle) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise DataError(f"{name}: '{path}' lacks arrays {sorted(missing)}; it needs x_train, y_train, x_test, y_test")
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            classes = [str(c) for c in archive["classes"]] if "classes" in archive.files else []
    except DataError:
        raise
    except Exception as exc:  # zipfile, pickle and value errors all mean an unreadable file
        raise DataError(f"{name}: '{path}' is not a readable npz archive ({exc}); fetch it again") from exc
    for key in ("y_train", "y_test"):
        arrays[key] = arrays[key].astype(np.int64).reshape(-1)
    for key in ("x_train", "x_test"):
        if arrays[key].ndim == 4 and arrays[key].shape[-1] == 1:
            arrays[key] = arrays[key][..., 0]  # (N, H, W, 1) is grey
    return RawDataset(name, **arrays, classes=classes).validate()


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded choice of `fraction` of each class (rounded) as the test split."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(round(fraction * len(members)))
        mask[rng.permutation(members)[:n_test]] = True
    return mask
