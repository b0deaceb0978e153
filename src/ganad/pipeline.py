"""Per-class, per-seed training and scoring, as the train and score stages run them.

A stage's jobs are its (class, seed) pairs: every class of the split file, trained once per
training seed of run.seeds. A job's seed, inputs and output paths come from its key alone, so
the jobs can run in any order and in any process; results are gathered in key order.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from . import layout, store
from .config import Params, load_method_config
from .device import resolve_device, seed_everything
from .images import ImageSet
from .methods import code_version, method_class
from .protocols import anomaly_labels, load_split, trained_under
from .training import TrainingRun


def jobs(classes: list[int], seeds: list[int]) -> list[tuple[int, int]]:
    """A stage's (class, seed) keys, seed-major: the first seed's classes come first, so a stage interrupted
    part-way leaves whole seeds finished."""
    return [(cls, seed) for seed in seeds for cls in classes]


def prepare_method(dataset: str, method_name: str) -> None:
    """The method's once-per-stage preparation (`Method.prepare`), in the stage's own process: a method that
    cannot run stops here, before any worker starts, and what it downloads is there for every class."""
    config = load_method_config(layout.method_config(dataset, method_name), method_name)
    method_class(method_name).prepare(config)


def train_class(params: Params, dataset: str, protocol: str, method_name: str, key: tuple[int, int]) -> dict:
    """Fit one method on one class's training split with one training seed; resumes from a matching checkpoint.
    Returns what it chose and its curves (`history`: one entry per epoch)."""
    cls, seed = key
    device = resolve_device(params.device)
    config = load_method_config(layout.method_config(dataset, method_name), method_name)
    split = load_split(layout.splits(dataset, protocol), cls)
    prepared = layout.prepared(dataset)
    train, val = ImageSet.from_dir(prepared, split["train"]), ImageSet.from_dir(prepared, split["val"])
    fingerprint = params.fingerprint(method_name, dataclasses.asdict(config), dataset, protocol, cls, seed,
                                     split["train"].tolist(), split["val"].tolist(), code_version(method_name))

    seed_everything(seed * 1000 + cls)
    method = method_class(method_name)(config, layout.prepared_meta(dataset)["channels"], device)
    checkpoint = layout.checkpoint(dataset, protocol, method_name, cls, seed)
    with TrainingRun(checkpoint, fingerprint, layout.training_log(dataset, protocol, method_name, cls, seed)) as run:
        method.fit(train, val, run)
    method.save(layout.model(dataset, protocol, method_name, cls, seed))
    return {"class": cls, "seed": seed, "train": len(train), "val": len(val), **method.selected(),
            "history": run.history}


def curves_table(infos: list[dict]) -> pd.DataFrame:
    """The trainings' histories as one long table: epoch, class, seed, metric, value (see layout.curves)."""
    rows = [(entry["epoch"], info["class"], info["seed"], name, value)
            for info in infos for entry in info["history"] for name, value in entry.items() if name != "epoch"]
    return pd.DataFrame(rows, columns=["epoch", "class", "seed", "metric", "value"])


def load_model(params: Params, dataset: str, protocol: str, method_name: str, cls: int, seed: int):
    """The trained model of one class and seed; a file that is not one stops with the way to rebuild it."""
    path = layout.model(dataset, protocol, method_name, cls, seed)
    try:
        return method_class(method_name).load(path, resolve_device(params.device))
    except store.StoreError as exc:
        raise store.StoreError(f"{exc}. Rebuild it with `dvc repro -f -s train@{dataset}-{protocol}-{method_name}`"
                               ) from exc


def score_class(params: Params, dataset: str, protocol: str, method_name: str,
                key: tuple[int, int]) -> tuple[pd.DataFrame, dict]:
    """Scores of one class's test split by the model of one training seed, one row per image, with its label and
    anomaly flag; and what the method chose from training data (bandwidths, sizes), for the report. An audit
    protocol's split is scored by the models of the protocol it audits."""
    cls, seed = key
    method = load_model(params, dataset, trained_under(protocol), method_name, cls, seed)
    split = load_split(layout.splits(dataset, protocol), cls)
    test = ImageSet.from_dir(layout.prepared(dataset), split["test"])
    scores = method.score(test)
    if not np.all(np.isfinite(scores)):
        raise FloatingPointError(f"{method_name} gave non-finite scores for {dataset} {protocol} class {cls} "
                                 f"seed {seed}")
    table = pd.DataFrame({"class": cls, "seed": seed, "index": test.index, "label": test.labels,
                          "anomalous": anomaly_labels(protocol, test.labels, cls), "score": scores})
    return table, method.selected()


def _worker_threads(workers: int) -> None:
    """Each worker process gets its share of this machine's cores, as torch threads and as BLAS / OpenMP
    threads for numpy and scikit-learn (whose pools would otherwise each take every core)."""
    import torch
    from threadpoolctl import threadpool_limits

    share = max(1, len(os.sched_getaffinity(0)) // workers)
    torch.set_num_threads(share)
    threadpool_limits(share)


def worker_count(setting: int | str, device: str, n_jobs: int) -> int:
    """Processes for `n_jobs` jobs: `setting`, or for `auto` one per CPU core (one on a GPU, which
    the processes would share), never more than there are jobs."""
    if setting == "auto":
        setting = 1 if resolve_device(device).type != "cpu" else len(os.sched_getaffinity(0))
    return max(1, min(int(setting), n_jobs))


def start_method(device: str) -> str:
    """How worker processes start. On a Linux CPU run they are forked: the stage's process has imported
    torch but run nothing on it (no threads, no CUDA), and a fork skips the 2-3 s of imports that a
    spawned worker repeats in every stage. A GPU run, or another system, spawns them, since a CUDA
    context does not survive a fork."""
    if sys.platform.startswith("linux") and resolve_device(device).type == "cpu":
        return "fork"
    return "spawn"


def for_each_job(params: Params, keys: list, fn, *args, workers: int | str = 1) -> list:
    """[fn(params, *args, key) for key in keys], `workers` (run.workers or run.score_workers)
    processes at once (see `start_method`; each with cores // workers torch threads); results in key order.
    Every job's result is its own, so the numbers depend on the worker count only through the
    thread count (float rounding). The first job that fails stops the others that have not
    started, and its exception is raised."""
    workers = worker_count(workers, params.device, len(keys))
    if workers <= 1:
        return [fn(params, *args, key) for key in keys]
    context = multiprocessing.get_context(start_method(params.device))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_threads, initargs=(workers,)) as pool:
        futures = [pool.submit(fn, params, *args, key) for key in keys]
        try:
            return [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
