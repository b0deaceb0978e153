"""Per-class training and scoring, as the train and score stages run them."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
from dvclive import Live

from . import layout
from .config import Params
from .device import resolve_device, seed_everything
from .images import ImageSet, load_meta
from .methods import get_method
from .protocols import anomaly_labels, load_split
from .training import TrainingRun, code_version


def train_class(params: Params, dataset: str, protocol: str, method_name: str, cls: int) -> dict:
    """Fit one method on one class's training split; resumes from a matching checkpoint."""
    device = resolve_device(params.device)
    config = params.method_config(method_name, dataset)
    split = load_split(layout.splits(dataset, protocol), cls)
    prepared = layout.prepared(dataset)
    train, val = ImageSet.from_dir(prepared, split["train"]), ImageSet.from_dir(prepared, split["val"])
    fingerprint = params.fingerprint(method_name, dataclasses.asdict(config), dataset, protocol, cls, params.seed,
                                     split["train"].tolist(), split["val"].tolist(), code_version())

    seed_everything(params.seed * 1000 + cls)
    method = get_method(method_name)(config, load_meta(prepared)["channels"], device)
    log_dir = layout.training_log(dataset, protocol, method_name, cls)
    shutil.rmtree(log_dir, ignore_errors=True)
    with Live(str(log_dir), save_dvc_exp=False, dvcyaml=False) as live:
        run = TrainingRun(layout.checkpoint(dataset, protocol, method_name, cls), fingerprint, live)
        method.fit(train, val, run)
    method.save(layout.model(dataset, protocol, method_name, cls))
    return {"class": cls, "train": len(train), "val": len(val), **method.selected()}


def mark_unavailable(dataset: str, protocol: str, method_name: str, reason: str) -> None:
    path = layout.unavailable(dataset, protocol, method_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason.strip() + "\n")


def unavailable_reason(dataset: str, protocol: str, method_name: str) -> str | None:
    path = layout.unavailable(dataset, protocol, method_name)
    return path.read_text().strip() if path.is_file() else None


def write_scores(path, table: pd.DataFrame | None, unavailable: str | None = None) -> None:
    """Scores as CSV, atomically; an unavailable method gets a header and a `# unavailable:` line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        if unavailable is not None:
            f.write(f"# unavailable: {' '.join(unavailable.split())}\n")
            table = pd.DataFrame(columns=["class", "index", "label", "anomalous", "score"])
        table.to_csv(f, index=False)
    tmp.replace(path)


def read_scores(path) -> tuple[pd.DataFrame, str | None]:
    """The score table and, for a method that could not run, the reason."""
    with open(path) as f:
        first = f.readline()
    reason = first.split(":", 1)[1].strip() if first.startswith("# unavailable:") else None
    return pd.read_csv(path, comment="#"), reason


def score_class(params: Params, dataset: str, protocol: str, method_name: str, cls: int) -> tuple[pd.DataFrame, dict]:
    """Scores of one class's test split, one row per image, with its label and anomaly flag;
    and what the method chose from training data (bandwidths, sizes), for the report."""
    device = resolve_device(params.device)
    method = get_method(method_name).load(layout.model(dataset, protocol, method_name, cls), device)
    split = load_split(layout.splits(dataset, protocol), cls)
    test = ImageSet.from_dir(layout.prepared(dataset), split["test"])
    scores = method.score(test)
    if not np.all(np.isfinite(scores)):
        raise FloatingPointError(f"{method_name} gave non-finite scores for {dataset} {protocol} class {cls}")
    table = pd.DataFrame({"class": cls, "index": test.index, "label": test.labels,
                          "anomalous": anomaly_labels(protocol, test.labels, cls), "score": scores})
    return table, method.selected()
