"""Where each stage reads and writes; dvc.yaml spells the same paths."""

import json
from pathlib import Path

DATA = Path("data")
MODELS = Path("models")
REPORTS = Path("reports")


def raw(dataset: str) -> Path:
    return DATA / "raw" / f"{dataset}.npz"


def prepared(dataset: str) -> Path:
    return DATA / "prepared" / dataset


def prepared_meta(dataset: str) -> dict:
    """The prepared dataset's sizes, channel count and class names (meta.json, written by `images.prepare`)."""
    return json.loads((prepared(dataset) / "meta.json").read_text())


def splits(dataset: str, protocol: str) -> Path:
    return DATA / "splits" / dataset / f"{protocol}.npz"


def method_config(dataset: str, method: str) -> Path:
    """A method's validated Config for one dataset, as the configure stage resolved it."""
    return DATA / "config" / dataset / f"{method}.json"


def model(dataset: str, protocol: str, method: str, cls: int) -> Path:
    return MODELS / dataset / protocol / method / f"class{cls}.safetensors"


def unavailable(dataset: str, protocol: str, method: str) -> Path:
    """Written instead of models when a method cannot run here; holds the reason."""
    return MODELS / dataset / protocol / method / "UNAVAILABLE.txt"


def checkpoint(dataset: str, protocol: str, method: str, cls: int) -> Path:
    """Outside every DVC output, so that an interrupted stage can resume from it."""
    return DATA / "checkpoints" / dataset / protocol / method / f"class{cls}.safetensors"


def training_log(dataset: str, protocol: str, method: str, cls: int) -> Path:
    return REPORTS / "training" / dataset / protocol / method / f"class{cls}"


def scores(dataset: str, protocol: str, method: str) -> Path:
    return DATA / "scores" / dataset / protocol / f"{method}.csv"


def selected(dataset: str, protocol: str, method: str) -> Path:
    """What a method chose from training data, per class (bandwidths, sizes, best epochs)."""
    return DATA / "scores" / dataset / protocol / f"{method}.selected.json"


def metrics(dataset: str, protocol: str) -> Path:
    return REPORTS / "metrics" / f"{dataset}_{protocol}.json"


def tables() -> Path:
    return REPORTS / "tables"


def figures(dataset: str, protocol: str) -> Path:
    return REPORTS / "figures" / f"{dataset}_{protocol}"


# --- ranking folders of images (ganad.ranking; the rank_* stages) ---

def ranking_demo() -> Path:
    """The offline demo's folders (normal/, mixed/<digit>/, flat/), written by the rank_demo stage."""
    return DATA / "demo" / "rank"


def ranking_model(method: str) -> Path:
    return MODELS / "ranking" / f"{method}.safetensors"


def ranking_checkpoint(method: str) -> Path:
    """Outside every DVC output, so that an interrupted rank_train can resume from it."""
    return DATA / "checkpoints" / "ranking" / f"{method}.safetensors"


def ranking_log(method: str) -> Path:
    return REPORTS / "training" / "ranking" / method


def ranking_dir(collection: str) -> Path:
    return REPORTS / "ranking" / collection


def ranking_scores(collection: str) -> Path:
    return ranking_dir(collection) / "scores.csv"


def ranking_grid(collection: str) -> Path:
    """The most and least anomalous images of the collection (the layout of ADGAN Figs. 4-6)."""
    return ranking_dir(collection) / "ranked.png"


def ranking_metrics(collection: str) -> Path:
    return ranking_dir(collection) / "metrics.json"


# --- brain MRI (ganad.brain; the brain_* stages) ---

def brain_demo() -> Path:
    """The offline demo's volumes in the HCP and BraTS layouts (hcp/, brats/), written by the brain_demo stage."""
    return DATA / "demo" / "brain"


def brain_reports() -> Path:
    """prepare.json and orientation.png (brain_prepare); results.md, metrics.json and Fig. 3 (brain_report)."""
    return REPORTS / "brain"


def brain_slices(dataset: str) -> Path:
    """One row per prepared slice: its source, subject, grade, axial index and voxel counts."""
    return prepared(dataset) / "slices.csv"
