"""The convergence study: how far each network method is from its own converged result, and at what budget.

Each method trains on a study split of the official TRAINING images (ganad.evaluation.convergence.study_split:
held-out normals and anomalies of the other classes as a labelled study test set; the test images the tables
report are never read), with its settings from params.yaml (`--set method.key=value` overrides one). Every
`--every` updates (within epochs too) it logs the validation criterion (`val_score`, the method's own, as
`select: best_val` uses it) and the study AUROC of the weights as they stand; a run stops when `val_score` has
not improved for `--patience` evaluations, or at `--cap` updates. Curves are appended as they come
(`curves.csv`), so an interrupted study resumes with the (method, protocol, class) runs it lacks (the partial
curve of the run it was in is dropped first). Every run's study split also gets the floors' study AUROCs
(`floors.csv`: scorers that learn nothing, the level a plateau has to clear); `--floors-only` records them for
a study that has none and trains nothing.

    python benchmarks/convergence.py run --data data/external/mnist.npz --out reports/convergence/mnist \\
        --protocol leave_one_class_out --classes 1,9,0,4 --methods dcae,adae --cap 3000
    python benchmarks/convergence.py report --out reports/convergence/mnist

`report` writes summary.csv, README.md (the plateau AUROC, updates and CPU seconds to 90 % and 95 % of it,
per method and protocol on the class-mean curve and per class) and one figure per method and protocol.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from ganad.config.params import load_params, method_overrides
from ganad.data.images import ImageSet, resize_uint8, to_nchw, to_unit_range
from ganad.data.protocols import anomaly_labels
from ganad.data.sources import load_embedded, load_npz
from ganad.evaluation.convergence import (
    FLOOR_COLUMNS,
    FLOORS_FILE,
    STUDY_FILE,
    data_identity,
    same_settings,
    study_settings,
    study_split,
    summarise,
)
from ganad.evaluation.floors import FLOORS, floor_aurocs
from ganad.methods import method_class
from ganad.methods.common.training_run import TrainingRun
from ganad.runtime.device import seed_everything

NETWORK_METHODS = ("adae", "adgan", "dcae", "vae", "cevae", "anogan", "ganomaly", "egbad", "igmm_gan")
SEARCH_METHODS = ("adgan", "anogan")  # scored by a per-image search: a smaller study test set
CURVE_COLUMNS = ["method", "protocol", "class", "epoch", "updates", "cpu_s", "val_score", "study_auroc"]


@contextlib.contextmanager
def paused_training(method):
    """An evaluation inside training leaves it as it found it: the torch RNG state, and the networks in train
    mode (scoring switches them to eval mode; the epoch goes on training)."""
    rng = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(rng)
        if hasattr(method, "_mode"):
            method._mode(True)


class StopStudy(Exception):
    """The validation criterion stopped improving, or the cap was reached."""


class StudyRun(TrainingRun):
    """A run without checkpoints that, every `every` updates (counted step by step, so that a large training set is
    evaluated within its epochs too), logs the validation criterion and the study AUROC of the weights as they stand
    to the curves file; it stops training when `val_score` has not improved for `patience` evaluations, or at the
    cap. An evaluation leaves training as it found it: the RNG state and the networks' train mode are restored."""

    def __init__(self, key, data: tuple[ImageSet, ImageSet, ImageSet], anomalous, schedule, out: Path):
        super().__init__(None, "study")
        self.key, self.anomalous, self.out = key, anomalous, out
        self.train, self.val, self.test = data
        self.every, self.cap, self.patience = schedule
        self.method = None  # the method being trained, set before fit
        self.updates, self.next_eval, self.best, self.since_best = 0, self.every, math.inf, 0
        self.cpu = 0.0
        self.started = time.process_time()

    def check_finite(self, losses: dict[str, float], epoch: int, step: int) -> None:
        super().check_finite(losses, epoch, step)
        self.updates += 1
        if self.updates >= self.next_eval or self.updates >= self.cap:
            self.evaluate(epoch)

    def evaluate(self, epoch: int) -> None:
        self.cpu += time.process_time() - self.started  # training time only: evaluation is not counted
        self.next_eval = self.updates + self.every
        with paused_training(self.method):
            val = float(self.method.epoch_metrics(epoch, False, self.train, self.val).get("val_score", float("nan")))
            auroc = self.study_auroc(self.method)
        row = [*self.key, epoch, self.updates, round(self.cpu, 2), val, auroc]
        pd.DataFrame([row], columns=CURVE_COLUMNS).to_csv(self.out, mode="a", header=False, index=False)
        print(f"  {self.key} updates {self.updates}: val_score {val:.4g}, study AUROC {auroc:.3f}", flush=True)
        if math.isfinite(val) and val < self.best - 1e-3 * abs(self.best if math.isfinite(self.best) else val):
            self.best, self.since_best = val, 0
        else:
            self.since_best += 1
        self.started = time.process_time()
        if self.since_best >= self.patience or self.updates >= self.cap:
            raise StopStudy

    def study_auroc(self, method) -> float:
        """The study AUROC of the method as training stands."""
        scorer = method
        if hasattr(method, "fit_mixture"):  # IGMM-GAN scores with a mixture fitted after training
            scorer = copy.deepcopy(method)
            scorer.fit_mixture(scorer.encodings(self.train), scorer.encodings(self.val))
        scores = np.asarray(scorer.score(self.test), dtype=float)
        return float(roc_auc_score(self.anomalous, scores)) if np.all(np.isfinite(scores)) else float("nan")


def study_config(params, name: str, channels: int, settings: dict, cap: int, threads: int):
    """A method's settings in the study: params.yaml's (and `--set`'s), trained to the cap (one epoch of one
    update at least: `min_steps` = cap), the weights as they stand scored (`select: last`)."""
    config = params.method_config(name, channels)
    return config.model_copy(
        update={"epochs": 1, "min_steps": cap, "select": "last", "threads": threads, **settings.get(name, {})}
    )


def record_study(out: Path, data: str, configs: dict) -> None:
    """OUT/study.json: what the study trains on and each method's settings as the curves depend on them
    (`ganad.evaluation.convergence.study_settings`), so that a run's budgets are read off its curves only where
    they speak for it. A second invocation with other data or settings for a method already there is refused."""
    identity = data_identity("embedded", "mnist") if data == "embedded" else data_identity("npz", "", data)
    path = out / STUDY_FILE
    study = json.loads(path.read_text()) if path.is_file() else {"data": identity, "settings": {}}
    if study["data"] != identity:
        raise click.UsageError(f"{out} is a study on other data ({study['data']}); give another --out")
    for name, config in configs.items():
        mine = study_settings(json.loads(json.dumps(config.model_dump())))
        if not same_settings(name, mine, study["settings"].setdefault(name, mine)):
            raise click.UsageError(f"{out} studied {name} with other settings; give another --out")
    path.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")


def load_images(data: str):
    """(uint8 N,C,32,32 training images, their labels) of an npz archive, or of the embedded MNIST subset."""
    raw = load_embedded("mnist") if data == "embedded" else load_npz(Path(data).stem, data)
    return resize_uint8(to_nchw(raw.x_train)), np.asarray(raw.y_train)


def image_set(images, labels, index) -> ImageSet:
    return ImageSet(to_unit_range(images[index]), labels[index], index)


def record_floors(path: Path, key: tuple, train: ImageSet, test: ImageSet, anomalous: np.ndarray) -> None:
    """Append the floors' study AUROCs on one run's study split (its training and study test images) to
    OUT/floors.csv, once per run: scorers that learn nothing, the level a plateau has to clear."""
    done = set()
    if path.is_file():
        done = set(pd.read_csv(path)[["method", "protocol", "class"]].itertuples(index=False, name=None))
    else:
        path.write_text(",".join(FLOOR_COLUMNS) + "\n")
    if key in done:
        return
    aurocs = floor_aurocs(train.x.numpy(), test.x.numpy(), anomalous)
    row = [*key, *(round(aurocs[name], 6) for name in FLOORS)]
    pd.DataFrame([row], columns=FLOOR_COLUMNS).to_csv(path, mode="a", header=False, index=False)


def done_keys(done: Path) -> set[tuple]:
    if not done.is_file():
        return set()
    return {tuple(json.loads(line)) for line in done.read_text().splitlines() if line}


@click.group()
def main() -> None:
    """The convergence study (see the module's docstring)."""


@main.command()
@click.option("--data", required=True, help="an npz archive of uint8 x_train, y_train, ... or 'embedded'")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--protocol", "protocols", multiple=True, default=["leave_one_class_out"])
@click.option("--classes", default="1,9,0,4", help="comma-separated class labels")
@click.option("--methods", default=",".join(NETWORK_METHODS))
@click.option("--set", "overrides", multiple=True, help="method.key=value, e.g. adae.width=64")
@click.option("--every", default=100, help="evaluate every N updates")
@click.option("--cap", default=4000, help="stop at this many updates")
@click.option("--patience", default=12, help="stop after this many evaluations without a better val_score")
@click.option("--test-size", default=1000, help="study test images (held-out normals and anomalies)")
@click.option("--search-test-size", default=300, help="study test images for the search-scored methods")
@click.option("--threads", default=2)
@click.option("--seed", default=0)
@click.option("--floors-only", is_flag=True, help="record the floors of every run's study split; train nothing")
def run(
    data,
    out,
    protocols,
    classes,
    methods,
    overrides,
    every,
    cap,
    patience,
    test_size,
    search_test_size,
    threads,
    seed,
    floors_only,
) -> None:
    """Train every (method, protocol, class) not yet done and append its curve to OUT/curves.csv; record the
    floors on every run's study split in OUT/floors.csv (a finished study run again gains its floors only)."""
    torch.set_num_threads(threads)
    params = load_params()
    images, labels = load_images(data)
    out.mkdir(parents=True, exist_ok=True)
    curves, done = out / "curves.csv", out / "done.jsonl"
    if not curves.is_file():
        curves.write_text(",".join(CURVE_COLUMNS) + "\n")
    finished = done_keys(done)
    keys = [(m, p, int(c)) for p in protocols for c in classes.split(",") for m in methods.split(",")]
    logged = pd.read_csv(curves)
    pending = set() if floors_only else set(keys) - finished
    partial = [tuple(k) in pending for k in logged[["method", "protocol", "class"]].itertuples(index=False)]
    if any(partial):  # an interrupted run's partial curve: that run starts again
        logged[[not p for p in partial]].to_csv(curves, index=False)
    if pending:
        with (out / "command.txt").open("a") as f:  # every invocation that trained for the study, in order
            f.write(" ".join(["python", *sys.argv]) + "\n")
    settings = method_overrides(overrides)
    record_study(
        out,
        data,
        {name: study_config(params, name, images.shape[1], settings, cap, threads) for name in methods.split(",")},
    )
    for key in keys:
        name, protocol, cls = key
        size = search_test_size if name in SEARCH_METHODS else test_size
        split = study_split(labels, protocol, cls, size, params.split.val_fraction, seed)
        train, val, test = (image_set(images, labels, split[p]) for p in ("train", "val", "test"))
        anomalous = anomaly_labels(protocol, labels[split["test"]], cls).astype(bool)
        record_floors(out / FLOORS_FILE, key, train, test, anomalous)
        if key not in pending:
            continue
        config = study_config(params, name, images.shape[1], settings, cap, threads)
        per_epoch = method_class(name).steps_per_epoch(config, len(train))
        print(
            f"{key}: {len(train)} train, {len(val)} val, {len(test)} study test "
            f"({int(anomalous.sum())} anomalous), {per_epoch} updates per epoch",
            flush=True,
        )
        seed_everything(seed * 1000 + cls)
        method = method_class(name)(config, images.shape[1], torch.device("cpu"))
        study = StudyRun(key, (train, val, test), anomalous, (every, cap, patience), curves)
        study.method = method
        with contextlib.suppress(StopStudy):  # the criterion stopped improving, or the cap
            method.fit(train, val, study)
        with done.open("a") as f:
            f.write(json.dumps(list(key)) + "\n")


def plot(curves: pd.DataFrame, method: str, protocol: str, path: Path) -> None:
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_auroc, ax_val = fig.subplots(1, 2)
    for cls, group in curves.groupby("class"):
        ax_auroc.plot(group["updates"], group["study_auroc"], marker=".", label=f"class {cls}")
        ax_val.plot(group["updates"], group["val_score"], marker=".", label=f"class {cls}")
    ax_auroc.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax_auroc.set(xlabel="updates", ylabel="study AUROC", title=f"{method}, {protocol}: study AUROC")
    ax_val.set(xlabel="updates", ylabel="val_score (lower is better)", title="validation criterion")
    ax_auroc.legend(fontsize=7)
    FigureCanvasAgg(fig).print_png(str(path))


@main.command()
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--tail", default=3, help="evaluations averaged into the plateau")
def report(out, tail) -> None:
    """Write OUT/summary.csv, OUT/README.md and OUT/<method>_<protocol>.png from OUT/curves.csv."""
    curves = pd.read_csv(out / "curves.csv")
    floors = pd.read_csv(out / FLOORS_FILE) if (out / FLOORS_FILE).is_file() else None
    summary = summarise(curves, tail, floors)
    summary.round(4).to_csv(out / "summary.csv", index=False)
    for (method, protocol), group in curves.groupby(["method", "protocol"]):
        plot(group, method, protocol, out / f"{method}_{protocol}.png")
    commands = (out / "command.txt").read_text().split("\n") if (out / "command.txt").is_file() else ["(not recorded)"]
    command = "\n".join(f"    {line}" for line in commands if line.strip())
    means = summary[summary["class"] == "mean"].drop(columns="class")
    lines = [
        f"# Convergence study: {out.name}\n",
        f"Generated by `python benchmarks/convergence.py report --out {out}` from `curves.csv`, written by\n\n"
        f"{command}\n",
        "Study AUROC: on a study split of the official training images (held-out normals and anomalies of the "
        "other classes); the test images the tables report are never read. Plateau: the mean of the last "
        f"{tail} evaluations of the class-mean curve (each run stopped when its validation criterion stopped "
        "improving, or at the cap). Updates to 90 % / 95 %: the first update count from which the class-mean "
        "AUROC stays at least 0.9 (resp. 0.95) x |plateau - 0.5| from chance on the plateau's side "
        "(a plateau below 0.5: the scores rank the anomalies as the most normal); CPU seconds: training only, "
        "evaluations excluded. NaN: never reached for good. Floor (`floor_auroc`): the higher of two scorers that "
        "learn nothing (the distance to the mean normal training image, the distance of the mean intensity), "
        "scored on each run's own study split (`floors.csv`); a plateau that does not clear it (negative "
        "`plateau_minus_floor`) is no budget's fault.\n",
        "## Per method and protocol (class-mean curve)\n",
        means.round(3).to_markdown(index=False) + "\n",
        "## Per class\n",
        summary[summary["class"] != "mean"].round(3).to_markdown(index=False) + "\n",
        "## Curves\n",
        *(f"![{m} {p}]({m}_{p}.png)\n" for (m, p), _ in curves.groupby(["method", "protocol"])),
    ]
    (out / "README.md").write_text("\n".join(lines))
    print(means.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
