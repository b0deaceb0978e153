"""Where each stage reads and writes; dvc.yaml spells the same paths."""

from pathlib import Path

from ganad.data.protocols import rebuild_prepared
from ganad.errors import DataError
from ganad.files import read_json

DATA = Path("data")
MODELS = Path("models")
REPORTS = Path("reports")


def raw(dataset: str) -> Path:
    return DATA / "raw" / f"{dataset}.npz"


def prepared(dataset: str) -> Path:
    return DATA / "prepared" / dataset


def prepared_meta(dataset: str) -> dict:
    """The prepared dataset's sizes, channel count and class names (meta.json, written by `images.prepare`); a
    missing or broken file stops naming the command that writes it."""
    meta = read_json(prepared(dataset) / "meta.json", rebuild_prepared(dataset))
    if not isinstance(meta, dict) or not isinstance(meta.get("channels"), int):
        raise DataError(
            f"'{prepared(dataset) / 'meta.json'}' lacks the prepared data's channel count; rebuild it "
            f"with `{rebuild_prepared(dataset)}`"
        )
    return meta


def splits(dataset: str, protocol: str) -> Path:
    return DATA / "splits" / dataset / f"{protocol}.npz"


def method_config(dataset: str, method: str) -> Path:
    """A method's validated Config for one dataset, as the configure stage resolved it."""
    return DATA / "config" / dataset / f"{method}.json"


def model(dataset: str, protocol: str, method: str, cls: int, seed: int) -> Path:
    """One trained model per class and training seed (run.seeds)."""
    return MODELS / dataset / protocol / method / f"seed{seed}" / f"class{cls}.safetensors"


def unavailable(dataset: str, protocol: str, method: str) -> Path:
    """Written instead of models when a method cannot run here; holds the reason."""
    return MODELS / dataset / protocol / method / "UNAVAILABLE.txt"


def checkpoint(dataset: str, protocol: str, method: str, cls: int, seed: int) -> Path:
    """Outside every DVC output, so that an interrupted stage can resume from it."""
    return DATA / "checkpoints" / dataset / protocol / method / f"seed{seed}" / f"class{cls}.safetensors"


def training_logs(dataset: str, protocol: str, method: str) -> Path:
    """dvclive's folders of one train_score stage, one per class and seed."""
    return REPORTS / "training" / dataset / protocol / method


def training_log(dataset: str, protocol: str, method: str, cls: int, seed: int) -> Path:
    return training_logs(dataset, protocol, method) / f"seed{seed}" / f"class{cls}"


def curves(dataset: str, protocol: str, method: str) -> Path:
    """Every class's and seed's training curves of one train_score stage in one long table (epoch, class, seed, metric,
    value), which dvc.yaml's top-level `plots` draws as one chart with the classes overlaid."""
    return REPORTS / "curves" / f"{dataset}_{protocol}_{method}.csv"


def scores(dataset: str, protocol: str, method: str) -> Path:
    return DATA / "scores" / dataset / protocol / f"{method}.csv"


def selected(dataset: str, protocol: str, method: str) -> Path:
    """What a method chose from training data, per class (bandwidths, sizes, best epochs)."""
    return DATA / "scores" / dataset / protocol / f"{method}.selected.json"


def metrics(dataset: str, protocol: str) -> Path:
    """The headline: mean AUROC per method over classes and seeds, its spread over seeds (DVC metrics)."""
    return REPORTS / "metrics" / f"{dataset}_{protocol}.json"


def class_metrics(dataset: str, protocol: str) -> Path:
    """The detail behind the headline: AUROC, its bootstrap interval and AP per method, seed and class."""
    return REPORTS / "metrics" / "classes" / f"{dataset}_{protocol}.csv"


def results_page() -> Path:
    """What a reader opens first (the report stage): headline tables, the leak audit, figures, budgets."""
    return REPORTS / "results.md"


def tables() -> Path:
    return REPORTS / "tables"


def figures(dataset: str, protocol: str) -> Path:
    return REPORTS / "figures" / f"{dataset}_{protocol}"


# --- ranking folders of images (ganad.studies.ranking; the rank_* stages) ---


def ranking_demo() -> Path:
    """The offline demo's folders (normal/, mixed/<digit>/, flat/), written by the rank_demo stage."""
    return DATA / "demo" / "rank"


def ranking_model(method: str) -> Path:
    return MODELS / "ranking" / f"{method}.safetensors"


def ranking_calibration(method: str) -> Path:
    """The ranking model's scores of the normal folder's validation slice: what a collection's p-values use."""
    return MODELS / "ranking" / f"{method}.calibration.json"


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


# --- brain MRI (ganad.studies.brain; the brain_* stages) ---


def brain_demo() -> Path:
    """The offline demo's volumes in the HCP and BraTS layouts (hcp/, brats/), written by the brain_demo stage."""
    return DATA / "demo" / "brain"


def brain_reports() -> Path:
    """prepare.json and orientation.png (brain_prepare); results.md, metrics.json and Fig. 3 (brain_report)."""
    return REPORTS / "brain"


def brain_slices(dataset: str) -> Path:
    """One row per prepared slice: its source, subject, grade, axial index and voxel counts."""
    return prepared(dataset) / "slices.csv"
