"""The two evaluation protocols, as index splits into the pooled image array.

Images are pooled as `[official train | official test]`, so an index below
`n_train` is an official training image. Every split is a dict of int64 index
arrays `train`, `val`, `test`; `val` is carved from training normal data only.

- leave_one_class_out (ADAE, after EGBAD): class c is the anomaly; 80 % of the
  pooled normal images train, the other 20 % plus every image of class c test.
- one_class_normal (ADGAN, after Schoelkopf): class c is normal; train on its
  official training images, test on `test_size` random official test items.
- leave_one_class_out_leaky (the leak audit; run.audit_protocols): leave-one-class-out's
  training and validation images, but the test normals drawn as EGBAD's public code draws
  them, from a second permutation, so that about 80 % of them were trained on. No model
  trains on it: leave-one-class-out's models score it (`trained_under`), so the difference
  between the two protocols' AUROCs is the split's leak alone.
- healthy_to_tumour (ADAE 4.1, the brain data only; `ganad.studies.brain.slices` writes its
  split): class 0 (normal) trains on healthy subjects, validates on held-out healthy
  subjects, and tests on every slice of the tumour volumes; a tumour slice is anomalous.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganad.errors import DataError, MissingInput
from ganad.files import load_npz, save_npz

PROTOCOLS = ("leave_one_class_out", "one_class_normal")  # for every image dataset (run.protocols)
BRAIN_DATASET, BRAIN_PROTOCOL = "brain", "healthy_to_tumour"  # the brain data (ganad.studies.brain) and its protocol
LEAKY_PROTOCOL = "leave_one_class_out_leaky"
AUDIT_PROTOCOLS = {LEAKY_PROTOCOL: "leave_one_class_out"}  # audit protocol: the protocol whose models score it


def trained_under(protocol: str) -> str:
    """The protocol whose models score `protocol`'s test split: itself, or for an audit the audited one."""
    return AUDIT_PROTOCOLS.get(protocol, protocol)


def anomaly_labels(protocol: str, labels: np.ndarray, cls: int) -> np.ndarray:
    """1 for anomalous, 0 for normal: higher scores should go to the 1s."""
    if protocol in ("leave_one_class_out", LEAKY_PROTOCOL):
        return (labels == cls).astype(np.int64)
    if protocol in ("one_class_normal", BRAIN_PROTOCOL):
        return (labels != cls).astype(np.int64)
    raise ValueError(f"unknown protocol '{protocol}'; known: {list(PROTOCOLS) + [LEAKY_PROTOCOL, BRAIN_PROTOCOL]}")


def _carve_validation(train: np.ndarray, val_fraction: float, rng: np.random.Generator):
    train = rng.permutation(train)
    n_val = int(round(val_fraction * len(train)))
    return np.sort(train[n_val:]), np.sort(train[:n_val])


def leave_one_class_out(
    labels: np.ndarray,
    cls: int,
    rng: np.random.Generator,
    train_fraction: float = 0.8,
    val_fraction: float = 0.1,
    leaky: bool = False,
) -> dict[str, np.ndarray]:
    """One permutation of the normal pool cut at `train_fraction`: train and test never share an image.

    `leaky=True` reproduces the public EGBAD code's defect for auditing only: the test
    normals come from a second, independent permutation, so most of them were trained on.
    Training and validation images are the same either way (the second permutation is drawn
    after them), so the same models score both test splits.
    """
    normal = np.flatnonzero(labels != cls)
    n_train = int(round(train_fraction * len(normal)))
    order = rng.permutation(normal)
    train, val = _carve_validation(order[:n_train], val_fraction, rng)
    test_normal = rng.permutation(normal)[n_train:] if leaky else order[n_train:]
    test = np.sort(np.concatenate([test_normal, np.flatnonzero(labels == cls)]))
    return {"train": train, "val": val, "test": test}


def one_class_normal(
    labels: np.ndarray,
    n_train: int,
    cls: int,
    rng: np.random.Generator,
    test_size: int = 5000,
    val_fraction: float = 0.1,
) -> dict[str, np.ndarray]:
    """Train on the official training images of `cls`; test on random official test items of all classes."""
    official_test = np.arange(n_train, len(labels))
    train = np.flatnonzero(labels[:n_train] == cls)
    train, val = _carve_validation(train, val_fraction, rng)
    test = np.sort(rng.choice(official_test, size=min(test_size, len(official_test)), replace=False))
    return {"train": train, "val": val, "test": test}


def stratified_subsample(test: np.ndarray, anomalous: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """At most `size` of the `test` indices, normal and anomalous ones in their shares (each rounded, at least
    one of each where both exist), drawn without replacement; the indices sorted."""
    if len(test) <= size:
        return test
    n_anomalous = int(round(size * anomalous.mean()))
    if 0 < anomalous.sum() < len(anomalous):
        n_anomalous = min(max(n_anomalous, 1), size - 1)
    keep = [
        rng.choice(test[anomalous == 1], size=n_anomalous, replace=False),
        rng.choice(test[anomalous == 0], size=size - n_anomalous, replace=False),
    ]
    return np.sort(np.concatenate(keep))


def make_splits(
    protocol: str,
    labels: np.ndarray,
    n_train: int,
    classes: list[int],
    seed: int,
    *,
    train_fraction: float = 0.8,
    val_fraction: float = 0.1,
    test_size: int = 5000,
    test_max: int | None = None,
    leaky: bool = False,
) -> dict[int, dict[str, np.ndarray]]:
    """Splits for every class, each from its own stream of `seed` so that one class never shifts another.
    `test_max`: each test split cut to at most that many images, stratified by anomaly label (for scores that
    search per image, e.g. ADGAN's at the paper's settings); training and validation images are drawn first, so
    they are the same with or without it."""
    splits = {}
    for cls in classes:
        rng = np.random.default_rng([seed, PROTOCOLS.index(trained_under(protocol)), cls])
        if protocol in ("leave_one_class_out", LEAKY_PROTOCOL):
            splits[cls] = leave_one_class_out(
                labels, cls, rng, train_fraction, val_fraction, leaky or protocol == LEAKY_PROTOCOL
            )
        elif protocol == "one_class_normal":
            splits[cls] = one_class_normal(labels, n_train, cls, rng, test_size, val_fraction)
        else:
            raise ValueError(f"unknown protocol '{protocol}'; known: {list(PROTOCOLS) + [LEAKY_PROTOCOL]}")
        if test_max is not None:
            test = splits[cls]["test"]
            splits[cls]["test"] = stratified_subsample(test, anomaly_labels(protocol, labels[test], cls), test_max, rng)
    return splits


def leaked_share(split: dict[str, np.ndarray], protocol: str, labels: np.ndarray, cls: int) -> float:
    """The share of a split's normal test images that are also training or validation images: 0 for every
    sound split, about `train_fraction` for the leaky one."""
    test = split["test"]
    normal = test[anomaly_labels(protocol, labels[test], cls) == 0]
    seen = np.isin(normal, np.concatenate([split["train"], split["val"]]))
    return float(seen.mean()) if len(normal) else 0.0


def check_splits(
    splits: dict[int, dict[str, np.ndarray]], protocol: str, labels: np.ndarray, dataset: str, names: list[str]
) -> None:
    """Every class has training images and a test split with normal and anomalous images, else stop
    (before anything is written) naming the class."""
    for cls, parts in splits.items():
        where = f"{dataset} {protocol}: class {cls} ({names[cls]})"
        if not len(parts["train"]) and len(parts["val"]):
            raise DataError(
                f"{where} has no training images: all {len(parts['val'])} of its normal training images went to "
                "validation; lower split.val_fraction (e.g. 0.1)"
            )
        if not len(parts["train"]):
            raise DataError(f"{where} has no training images; add images to it, or leave it out of run.classes")
        if not len(parts["test"]):
            raise DataError(
                f"{where}: its test split is empty (the dataset holds no test images for this protocol), so no "
                "AUROC can be measured; give the dataset test images (x_test and y_test, or a test/ folder)"
            )
        kinds = set(anomaly_labels(protocol, labels[parts["test"]], cls).tolist())
        if kinds != {0, 1}:
            missing = "anomalous" if 1 not in kinds else "normal"
            raise DataError(
                f"{where}: its test split has no {missing} images, so no AUROC can be measured; "
                "add test images (or, for a dataset of one class, rank it with the `rank` stages)"
            )


def save_splits(path, splits: dict[int, dict[str, np.ndarray]]) -> None:
    """Every class's index arrays in one npz, written atomically (`ganad.files`)."""
    arrays = {f"{part}_{cls}": idx for cls, parts in splits.items() for part, idx in parts.items()}
    save_npz(path, **arrays)


def rebuild_prepared(dataset: str) -> str:
    """The command that writes data/prepared/<dataset> again."""
    return "dvc repro -f -s brain_prepare" if dataset == BRAIN_DATASET else f"dvc repro -f -s preprocess@{dataset}"


def rebuild_splits(path) -> str:
    """The command that writes the splits file `path` (data/splits/<dataset>/<protocol>.npz) again."""
    path = Path(path)
    if path.stem == BRAIN_PROTOCOL:
        return "dvc repro -f -s brain_prepare"
    stage = "leak_split" if path.stem in AUDIT_PROTOCOLS else "split"
    return f"dvc repro -f -s {stage}@{path.parent.name}-{path.stem}"


def rebuild_metrics(dataset: str, protocol: str) -> str:
    """The command that writes reports/metrics/<dataset>_<protocol>.json and its per-class table again."""
    stage = "leak_evaluate" if protocol in AUDIT_PROTOCOLS else "evaluate"
    return f"dvc repro -f -s {stage}@{dataset}-{protocol}"


def _read_splits(path) -> dict[str, np.ndarray]:
    arrays = load_npz(path, rebuild_splits(path))
    for key, value in arrays.items():
        if value.ndim != 1 or value.dtype.kind not in "iu" or not key.split("_")[-1].isdigit():
            raise DataError(
                f"'{path}' holds '{key}' ({value.dtype}, shape {value.shape}), not a class's index array; "
                f"rebuild it with `{rebuild_splits(path)}`"
            )
    return arrays


def split_classes(path) -> list[int]:
    """The classes a splits file holds, in order: what the train_score and score stages run."""
    return sorted(int(key.split("_")[1]) for key in _read_splits(path) if key.startswith("train_"))


def load_split(path, cls: int) -> dict[str, np.ndarray]:
    arrays = _read_splits(path)
    if any(f"{part}_{cls}" not in arrays for part in ("train", "val", "test")):
        raise MissingInput(f"'{path}' holds no split for class {cls}; rebuild it with `{rebuild_splits(path)}`")
    return {part: arrays[f"{part}_{cls}"] for part in ("train", "val", "test")}
