"""What a run costs on this machine, measured before it trains.

    python -m ganad.engine.price                 # the workspace's params.yaml, one table per dataset
    python -m ganad.engine.price --out reports/price/paper.md

Each network method is built at its settings and trained for a few steps on random images of the dataset's
shape (one warm-up step, then `probe_steps` timed ones), then scores `probe_images` images; its seconds per
update and per scored image are multiplied by what the params ask for: the updates each (class, seed) job
trains (`NeuralMethod.steps` on the training splits the params give, drawn here as the split stage draws them)
and the test images each job scores (the leak audit's split too). Training and scoring hours are summed over
jobs and divided by the jobs that run at once (the local executor's), the probe having run with each job's
thread count. Left out: per-epoch validation, the classical baselines (minutes) and the brain and ranking
studies. Memory per job: its training images as float32, and the weights with their gradients and Adam's two
moments (a batch's activations on top). Disk: every job's model file and checkpoint (about three times the
model: weights, Adam's two moments).

The configure stage prices its dataset when `executor.max_hours` is set and stops the run, before anything
trains, when the estimate exceeds it (the paper profile sets it: on two CPU cores its full run takes months).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import torch

from ganad.config.params import Params, load_params
from ganad.data.images import ImageSet
from ganad.data.protocols import AUDIT_PROTOCOLS, make_splits, rebuild_prepared
from ganad.errors import ParamsError
from ganad.files import load_npy
from ganad.methods import method_class
from ganad.methods.common.training import NeuralMethod, torch_threads
from ganad.runtime import layout
from ganad.runtime.device import resolve_device, seed_everything
from ganad.runtime.executors import cores, processes, threads_per_job

PROBE_STEPS, PROBE_IMAGES = 3, 32
BYTES = 4  # float32 weights


def probe(method_name: str, config, channels: int, size: int, device, probe_steps: int = PROBE_STEPS, images=None):
    """(seconds per training update, seconds per scored image, parameters) of one network method at `config`,
    measured on random images: `probe_steps` timed updates after a warm-up one, then scoring `images` images."""
    seed_everything(0)
    cfg = config.model_copy(
        update={"epochs": 1, "min_steps": 0, "min_steps_by_protocol": {}, "budget_scale": 1.0, "select": "last"}
    )
    method = method_class(method_name)(cfg, channels, device)
    n = cfg.batch_size * (probe_steps + 1)
    train = ImageSet(torch.rand(n, channels, size, size) * 2 - 1, np.zeros(n, dtype=np.int64), np.arange(n))
    few = images or PROBE_IMAGES
    test = ImageSet(torch.rand(few, channels, size, size) * 2 - 1, np.zeros(few, dtype=np.int64), np.arange(few))
    times = []
    step = method.train_step

    def timed(x, epoch=0, i=0):  # every update of the probe's one epoch, timed where it starts and ends
        start = time.perf_counter()
        losses = step(x, epoch, i)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        return losses

    method.train_step = timed
    method.fit(train, ImageSet(test.x[:2], test.labels[:2], test.index[:2]))
    start = time.perf_counter()
    method.score(test)
    per_image = (time.perf_counter() - start) / few
    parameters = sum(p.numel() for net in method.nets.values() for p in net.parameters())
    return float(np.mean(times[1:] or times)), per_image, parameters


def _jobs_at_once(params: Params, n_jobs: int) -> tuple[int, int]:
    """(jobs at once, threads per job) as the local executor runs a stage of `n_jobs` jobs (serial: one). Slurm
    and Ray: also the local pool's, a lower bound on their speed."""
    executor = params.executor
    at_once = 1 if executor.kind == "serial" else processes(executor.jobs, params.device, n_jobs)
    return at_once, threads_per_job(executor.threads, at_once)


def estimate(params: Params, dataset: str, probe_steps: int = PROBE_STEPS) -> pd.DataFrame:
    """One row per network method and protocol of `dataset`: jobs, updates per job, seconds per update, test
    images per job, seconds per image, the training and scoring hours (summed over jobs), the wall hours at the
    jobs that run at once, and the disk its models and checkpoints take."""
    meta = layout.prepared_meta(dataset)
    labels = np.asarray(load_npy(layout.prepared(dataset) / "labels.npy", rebuild_prepared(dataset)))
    classes = params.classes_of(dataset, meta["classes"])
    splits = {  # drawn as the split stage draws them
        protocol: make_splits(protocol, labels, meta["n_train"], classes, params.seed, **params.split.model_dump())
        for protocol in [*params.protocols, *params.audit_protocols]
    }
    device = resolve_device(params.device)
    n_jobs = len(classes) * len(params.seeds)
    cap = params.decision.calibration_max or float("inf")
    at_once, threads = _jobs_at_once(params, n_jobs)
    rows = []
    for method in params.all_methods():
        kind = method_class(method)
        if not issubclass(kind, NeuralMethod):
            continue
        config = params.method_config(method, meta["channels"], meta.get("latent_dim"))
        with torch_threads(threads):
            per_update, per_image, parameters = probe(
                method, config, meta["channels"], meta["size"], device, probe_steps
            )
        for protocol in params.protocols:
            audits = [a for a in params.audit_protocols if AUDIT_PROTOCOLS[a] == protocol]
            train = [len(split["train"]) for split in splits[protocol].values()]
            updates = float(np.mean([kind.steps(config.for_protocol(protocol), n) for n in train]))
            # each scored split: its test images and the validation images its p-values calibrate on
            calibration = float(np.mean([min(len(sp["val"]), cap) for sp in splits[protocol].values()]))
            tests = sum(float(np.mean([len(sp["test"]) for sp in splits[p].values()])) for p in [protocol, *audits])
            tests += calibration * (1 + len(audits))
            train_h, score_h = n_jobs * updates * per_update / 3600, n_jobs * tests * per_image / 3600
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol + "".join(f" (+ {a})" for a in audits),
                    "method": method,
                    "jobs": n_jobs,
                    "updates per job": round(updates),
                    "s per update": per_update,
                    "images scored per job": round(tests),
                    "s per image": per_image,
                    "training h": train_h,
                    "scoring h": score_h,
                    "wall h": (train_h + score_h) / at_once,
                    # a job holds its training images as float32 and the weights, their gradients and Adam's two
                    # moments (activations come on top: a batch's, small at 32 x 32)
                    "memory per job GB": (np.mean(train) * meta["channels"] * meta["size"] ** 2 + 4 * parameters)
                    * BYTES
                    / 1e9,
                    "disk GB": n_jobs * 4 * parameters * BYTES / 1e9,
                }
            )
    table = pd.DataFrame(rows)
    table.attrs.update(at_once=at_once, threads=threads, device=describe(device), cores=cores())
    return table


def describe(device) -> str:
    """The machine a probe ran on, in words: the GPU's name, or the CPU's model name (Linux) and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu ({model})" if model else "cpu"


def check_time_limit(params: Params, dataset: str, table: pd.DataFrame) -> None:
    """Stop, before anything trains, a run whose estimated wall time exceeds executor.max_hours."""
    limit = params.executor.max_hours
    total = float(table["wall h"].sum()) if len(table) else 0.0
    if limit is None or total <= limit:
        return
    worst = table.sort_values("wall h").iloc[-1]
    raise ParamsError(
        f"{dataset}: its network methods would train and score for about {total:,.1f} h on this machine "
        f"({table.attrs['at_once']} jobs at once on {table.attrs['device']}; longest: {worst['method']} "
        f"{worst['protocol']}, {worst['wall h']:,.1f} h), more than executor.max_hours = {limit:g}. Scale the "
        f"budgets down (run.budget_scale, e.g. {max(limit / total, 1e-4):.2g}), run on a bigger machine (README: "
        "Bigger machines), or set executor.max_hours: null to start anyway; `python -m ganad.engine.price` prints "
        "the estimate per method"
    )


def markdown(table: pd.DataFrame) -> str:
    """The estimate as a markdown table, with its totals and the machine it was measured on."""
    if table.empty:
        return "No network method to price.\n"
    shown = table.copy()
    for column in ("s per update", "s per image"):
        shown[column] = shown[column].map(lambda v: f"{v:.3g}")
    for column in ("training h", "scoring h", "wall h", "memory per job GB", "disk GB"):
        shown[column] = shown[column].map(lambda v: f"{v:,.2f}")
    a = table.attrs
    return (
        shown.to_markdown(index=False)
        + f"\n\nTotal: {table['training h'].sum():,.1f} h of training and {table['scoring h'].sum():,.1f} h of "
        f"scoring over all jobs; about {table['wall h'].sum():,.1f} h wall with {a['at_once']} jobs at once on "
        f"{a['device']} ({a['threads']} threads each, {a['cores']} cores); at most "
        f"{table['memory per job GB'].max() * a['at_once']:,.2f} GB of memory for the jobs at once (before "
        f"activations); {table['disk GB'].sum():,.2f} GB of models and checkpoints.\n"
    )


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the tables here (markdown).")
@click.option("--probe-steps", default=PROBE_STEPS, show_default=True, help="Timed training updates per method.")
def main(out: Path | None, probe_steps: int) -> None:
    """Print what the workspace's params.yaml would cost on this machine: per dataset, network method and
    protocol, the training and scoring hours and the disk. Needs each dataset's prepared data
    (`dvc repro preprocess@<dataset>`)."""
    params = load_params()
    text = ""
    for dataset in params.datasets:
        table = estimate(params, dataset, probe_steps)
        text += f"## {dataset}\n\n" + markdown(table) + "\n"
    click.echo(text)
    if out is not None:
        from ganad.files import write_text

        write_text(out, f"# What this run costs (`python -m ganad.engine.price`)\n\n{text}")


if __name__ == "__main__":
    from ganad.runtime.stage import run

    run(main)
