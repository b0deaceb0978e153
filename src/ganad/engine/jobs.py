"""Per-class, per-seed training and scoring, as the train_score and score stages run them.

A stage's jobs are its (class, seed) pairs: every class of the split file, trained once per
training seed of run.seeds. A job's seed, inputs and output paths come from its key alone, so
the jobs can run in any order and in any process; results are gathered in key order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ganad.config.params import Params, load_method_config
from ganad.data.images import ImageSet
from ganad.data.protocols import BRAIN_DATASET, anomaly_labels, load_split, split_classes, trained_under
from ganad.engine.code import code_version
from ganad.engine.conformal import calibration_sample, p_values
from ganad.methods import method_class
from ganad.methods.base import MethodUnavailable
from ganad.methods.common.training_run import TrainingDiverged, TrainingRun
from ganad.runtime import layout, store
from ganad.runtime.device import resolve_device, seed_everything
from ganad.runtime.executors import map_jobs
from ganad.runtime.score_files import (
    mark_unavailable,
    unavailable_reason,
    write_scores,
    write_selected,
    write_table,
)


def jobs(classes: list[int], seeds: list[int]) -> list[tuple[int, int]]:
    """A stage's (class, seed) keys, seed-major: the first seed's classes come first, so a stage interrupted
    part-way leaves whole seeds finished."""
    return [(cls, seed) for seed in seeds for cls in classes]


def stage_prefix(dataset: str) -> str:
    """dvc.yaml names the brain's per-method stages brain_<kind> (they have a matrix of their own)."""
    return "brain_" if dataset == BRAIN_DATASET else ""


def prepare_method(dataset: str, method_name: str) -> None:
    """The method's once-per-stage preparation (`Method.prepare`), in the stage's own process: a method that
    cannot run stops here, before any worker starts, and what it downloads is there for every class."""
    config = load_method_config(layout.method_config(dataset, method_name), method_name)
    method_class(method_name).prepare(config)


def train_model(
    method_name: str,
    config,
    channels: int,
    device,
    train: ImageSet,
    val: ImageSet,
    *,
    seed: int,
    fingerprint: str,
    checkpoint: Path,
    log_dir: Path,
    out: Path,
):
    """Seed, build and fit one model, resuming from `checkpoint` and logging curves to `log_dir`, then save it to
    `out`: the one way models are trained, for the image benchmark and the ranking study alike. Returns the
    fitted method and its per-epoch history."""
    seed_everything(seed)
    method = method_class(method_name)(config, channels, device)
    with TrainingRun(checkpoint, fingerprint, log_dir) as run:
        method.fit(train, val, run)
    method.save(out)
    return method, run.history


def load_trained(method_name: str, path: Path, device: str, rebuild: str):
    """A trained model from its file; a file that is not one stops with `rebuild`, the way to rebuild it."""
    try:
        return method_class(method_name).load(path, resolve_device(device))
    except store.StoreError as exc:
        raise store.StoreError(f"{exc}. {rebuild}") from exc


def train_class(params: Params, dataset: str, protocol: str, method_name: str, key: tuple[int, int]) -> dict:
    """Fit one method on one class's training split with one training seed; resumes from a matching checkpoint.
    Returns what it chose and its curves (`history`: one entry per epoch)."""
    cls, seed = key
    device = resolve_device(params.device)
    config = load_method_config(layout.method_config(dataset, method_name), method_name)
    if hasattr(config, "for_protocol"):  # a network method's budget may differ by protocol
        config = config.for_protocol(protocol)
    split = load_split(layout.splits(dataset, protocol), cls)
    prepared = layout.prepared(dataset)
    train, val = ImageSet.from_dir(prepared, split["train"]), ImageSet.from_dir(prepared, split["val"])
    fingerprint = params.fingerprint(
        method_name,
        config.model_dump(),
        dataset,
        protocol,
        cls,
        seed,
        split["train"].tolist(),
        split["val"].tolist(),
        code_version(method_name, __name__),
    )

    method, history = train_model(
        method_name,
        config,
        layout.prepared_meta(dataset)["channels"],
        device,
        train,
        val,
        seed=seed * 1000 + cls,
        fingerprint=fingerprint,
        checkpoint=layout.checkpoint(dataset, protocol, method_name, cls, seed),
        log_dir=layout.training_log(dataset, protocol, method_name, cls, seed),
        out=layout.model(dataset, protocol, method_name, cls, seed),
    )
    # the job's own class and seed last: a method's choices may hold a `seed` of their own (a subsample's)
    return {**method.selected(), "class": cls, "seed": seed, "train": len(train), "val": len(val), "history": history}


def curves_table(infos: list[dict]) -> pd.DataFrame:
    """The trainings' histories as one long table: epoch, class, seed, metric, value (see layout.curves)."""
    rows = [
        (entry["epoch"], info["class"], info["seed"], name, value)
        for info in infos
        for entry in info["history"]
        for name, value in entry.items()
        if name != "epoch"
    ]
    return pd.DataFrame(rows, columns=["epoch", "class", "seed", "metric", "value"])


def load_model(params: Params, dataset: str, protocol: str, method_name: str, cls: int, seed: int):
    """The trained model of one class and seed; a file that is not one stops with the way to rebuild it."""
    return load_trained(
        method_name,
        layout.model(dataset, protocol, method_name, cls, seed),
        params.device,
        f"Rebuild it with `dvc repro -f -s {stage_prefix(dataset)}train_score@{dataset}-{protocol}-{method_name}`",
    )


def score_class(
    params: Params, dataset: str, protocol: str, method_name: str, key: tuple[int, int]
) -> tuple[pd.DataFrame, dict]:
    """Scores of one class's test split by the model of one training seed, one row per image, with its label,
    anomaly flag and conformal p-value (`ganad.engine.conformal`, from the same model's scores of the split's normal
    validation images); and what the method chose from training data (bandwidths, sizes), for the report. An
    audit protocol's split is scored by the models of the protocol it audits."""
    cls, seed = key
    method = load_model(params, dataset, trained_under(protocol), method_name, cls, seed)
    split = load_split(layout.splits(dataset, protocol), cls)
    test = ImageSet.from_dir(layout.prepared(dataset), split["test"])
    pick = calibration_sample(len(split["val"]), params.decision.calibration_max, seed * 1000 + cls)
    calibration = ImageSet.from_dir(layout.prepared(dataset), split["val"][pick])
    scores, calibration_scores = method.score(test), method.score(calibration) if len(calibration) else np.zeros(0)
    for what, values in (("test", scores), ("validation", calibration_scores)):
        if not np.all(np.isfinite(values)):
            trained = trained_under(protocol)
            raise TrainingDiverged(
                f"{method_name} gave non-finite scores to {int((~np.isfinite(values)).sum())} of {len(values)} "
                f"{what} images of {dataset} {protocol} class {cls} seed {seed}: its model diverged in training. "
                f"Lower methods.{method_name}.lr and retrain with "
                f"`dvc repro -f -s {stage_prefix(dataset)}train_score@{dataset}-{trained}-{method_name}`"
            )
    table = pd.DataFrame(
        {
            "class": cls,
            "seed": seed,
            "index": test.index,
            "label": test.labels,
            "anomalous": anomaly_labels(protocol, test.labels, cls),
            "score": scores,
            "p_value": p_values(calibration_scores, scores),
        }
    )
    return table, method.selected()


def for_each_job(params: Params, keys: list, fn, *args, scoring: bool = False) -> list:
    """[fn(params, *args, key) for key in keys] on params.executor (ganad.runtime.executors), results in key order;
    `scoring` jobs run executor.score_jobs at a time in the local pool, training jobs executor.jobs."""
    executor = params.executor
    return map_jobs(
        executor, fn, params, args, keys, jobs=executor.score_jobs if scoring else executor.jobs, device=params.device
    )


# --- a stage's whole work: every (class, seed) job of one method, dataset and protocol ---------------------


def train_all(params: Params, dataset: str, protocol: str, method_name: str) -> list[str]:
    """Train every job (ganad.runtime.layout's models, training logs and curves table); returns the lines to print.
    A method that cannot run here (e.g. pretrained weights cannot be had) leaves UNAVAILABLE.txt with the reason
    instead, and later stages show it as not run."""
    try:
        prepare_method(dataset, method_name)
        classes = split_classes(layout.splits(dataset, protocol))
        infos = for_each_job(params, jobs(classes, params.seeds), train_class, dataset, protocol, method_name)
    except MethodUnavailable as exc:
        mark_unavailable(dataset, protocol, method_name, str(exc))
        write_table(layout.curves(dataset, protocol, method_name), curves_table([]))
        return [f"{method_name} skipped for {dataset} {protocol}: {exc}"]
    write_table(layout.curves(dataset, protocol, method_name), curves_table(infos))
    return [
        f"{method_name} {dataset} {protocol}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "history")
        for info in infos
    ]


def score_all(params: Params, dataset: str, protocol: str, method_name: str) -> list[str]:
    """Score every job's test split (data/scores/<dataset>/<protocol>/<method>.csv and .selected.json); returns the
    lines to print. Every job is scored before anything is written, so a failure leaves no partial file."""
    out = layout.scores(dataset, protocol, method_name)
    reason = unavailable_reason(dataset, trained_under(protocol), method_name)
    if reason is not None:
        write_scores(out, None, unavailable=reason)
        write_selected(layout.selected(dataset, protocol, method_name), {})
        return [f"{method_name} {dataset} {protocol}: not run ({reason})"]
    keys = jobs(split_classes(layout.splits(dataset, protocol)), params.seeds)
    results = dict(zip(keys, for_each_job(params, keys, score_class, dataset, protocol, method_name, scoring=True)))
    write_scores(out, pd.concat([table for table, _ in results.values()]))
    chosen = {}
    for (cls, seed), (_, selected) in results.items():
        if selected:
            chosen.setdefault(f"seed {seed}", {})[str(cls)] = selected
    write_selected(layout.selected(dataset, protocol, method_name), chosen)
    return [f"{method_name} {dataset} {protocol}: {sum(len(t) for t, _ in results.values())} scores"]
