"""ADAE's dynamics and the paper's claim, measured on a study split: does G learn, and does D amplify anomalies?

For every (variant, protocol, class) this trains ADAE on the study split of the official TRAINING images
(`ganad.evaluation.convergence.study_split`: the test images the tables report are never read) with params.yaml's
settings plus the variant's, and logs

- per update: G's reconstruction error gen_rec = |X - G(X)|, D's errors real_rec = |X - D(X)| and
  fake_rec = |G(X) - D(G(X))|, both learning rates and D's fake-term weight (`steps`);
- every `--every` updates: the normal-validation criterion (`val_score`), how much G(x) differs between images
  (`g_spread`, the per-pixel standard deviation over validation images, averaged: about 0 when G has collapsed
  to one image whatever its input) and the study AUROC of each score on the same weights: the paper's
  ||x - D(G(x))|| (`d_of_g`), ||x - G(x)|| (`g`), ||x - D(x)|| (`d`) and D's amplification of G's error,
  ||x - D(G(x))|| / ||x - G(x)|| (`amplification`: above 0.5 when D enlarges anomalies' errors more than
  normals'), and the paper's score within bands of image brightness (`d_of_g_banded`, five quantile bands of
  mean intensity: a score that only measures the amount of ink falls to about 0.5 there), and on one training
  batch how G's two gradients meet: the cosine between the gradients (over G's parameters) of its reconstruction
  term and of its adversarial term (`grad_cos`; near -1: the adversarial term cancels the reconstruction's pull)
  and the adversarial gradient's norm over the reconstruction's (`grad_ratio`) (`evals`).

Beside them, the floors of the same split (scorers that learn nothing). `report` writes README.md (each score
against the floor at the last evaluation and at the evaluation `select: best_val` would keep) and one figure of
per-update curves per variant and protocol.

    python benchmarks/adae_claim.py run --data embedded --out reports/adae_claim/embedded_mnist \\
        --protocol one_class_normal --classes 2,5,1,9 --variants gaia,began --cap 650
    python benchmarks/adae_claim.py report --out reports/adae_claim/embedded_mnist

Each run is written to OUT/runs/<variant>_<protocol>_<class>.json when it finishes (a rerun skips it).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd
import torch
from convergence import image_set, load_images, paused_training, study_config
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from ganad.config.params import load_params, method_overrides
from ganad.data.protocols import anomaly_labels
from ganad.evaluation.convergence import study_split
from ganad.evaluation.floors import FLOORS, banded_auroc, floor_aurocs
from ganad.methods import method_class
from ganad.methods.common.training import per_image_l1
from ganad.methods.common.training_run import TrainingRun
from ganad.runtime.device import seed_everything

# variant -> ADAE settings on top of params.yaml's (the default profile's) adae section
VARIANTS = {
    "gaia": {"balance": "gaia"},  # GAIA's code: learning-rate sigmoid and fake-term gate
    "gaia+gen10": {"balance": "gaia", "gen_weight": 10.0},  # G's own reconstruction weighted 10
    "began": {"balance": "began"},  # BEGAN's k_t on D's fake term, fixed learning rates
    "lr": {"balance": "lr"},  # the paper's text: the learning-rate sigmoid alone
    "none": {"balance": "none"},  # the paper's losses, no balancing
}
SCORES = ("d_of_g", "g", "d", "amplification")
STEP_KEYS = ("gen_rec", "real_rec", "fake_rec", "lr_d", "lr_g", "fake_weight")


class ClaimRun(TrainingRun):
    """Logs every update's terms and, every `every` updates, the scores' study AUROCs of the weights as they stand;
    an evaluation leaves training as it found it (RNG state, train mode)."""

    def __init__(self, method, data, anomalous, every: int):
        super().__init__(None, "claim")
        self.method, (self.train, self.val, self.test), self.anomalous, self.every = method, data, anomalous, every
        self.brightness = self.test.x.reshape(len(self.test), -1).mean(1).numpy()
        self.steps, self.evals, self.updates, self.cpu = [], [], 0, 0.0
        self.started = time.process_time()

    def check_finite(self, losses: dict[str, float], epoch: int, step: int) -> None:
        super().check_finite(losses, epoch, step)
        self.updates += 1
        terms = {k: float(f"{losses.get(k, 1.0):.5g}") for k in STEP_KEYS}  # 5 digits: the record stays small
        self.steps.append({"update": self.updates, **terms})
        if self.updates % self.every == 0:
            self.evaluate(epoch)

    def evaluate(self, epoch: int) -> None:
        m = self.method
        self.cpu += time.process_time() - self.started
        row = {"update": self.updates, "cpu_s": round(self.cpu, 2)}
        with paused_training(m):
            row["val_score"] = float(m.epoch_metrics(epoch, False, self.train, self.val).get("val_score", np.nan))
            g_val, _ = m.reconstructions(self.val.x[:256])
            row["g_spread"] = float(g_val.std(axis=0).mean())
            configured = m.config
            for score in SCORES:
                m.config = configured.model_copy(update={"score": score})
                s = np.asarray(m.score(self.test), dtype=float)
                row[score] = float(roc_auc_score(self.anomalous, s)) if np.all(np.isfinite(s)) else np.nan
                if score == "d_of_g":
                    row["d_of_g_banded"] = banded_auroc(self.anomalous, s, self.brightness)
            m.config = configured
            row["grad_cos"], row["grad_ratio"] = generator_gradients(m, self.train.x[: m.config.batch_size])
        self.evals.append(row)
        print(f"  updates {self.updates}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if k != "update"))
        self.started = time.process_time()


def generator_gradients(method, x: torch.Tensor) -> tuple[float, float]:
    """(cosine, norm ratio) of G's gradients of |X - G(X)| and of |G(X) - D(G(X))| on batch `x`, both networks in
    train mode as in a training step; nothing is updated (the gradients are taken apart from the parameters')."""
    method._mode(True)
    G, D = method.G, method.D
    saved = copy.deepcopy((G.state_dict(), D.state_dict()))  # batch-norm running statistics, restored below
    x = method._input(x)
    fake = G(x)
    params = [p for p in G.parameters() if p.requires_grad]
    rec = torch.autograd.grad(per_image_l1(x, fake).mean(), params, retain_graph=True)
    adv = torch.autograd.grad(per_image_l1(fake, D(fake)).mean(), params)
    rec, adv = torch.cat([g.flatten() for g in rec]), torch.cat([g.flatten() for g in adv])
    G.load_state_dict(saved[0])
    D.load_state_dict(saved[1])
    cos = float(torch.nn.functional.cosine_similarity(rec, adv, dim=0))
    return cos, float(adv.norm() / rec.norm().clamp_min(1e-12))


@click.group()
def main() -> None:
    """ADAE's training dynamics and score variants on a study split."""


@main.command()
@click.option("--data", required=True, help="an npz archive of uint8 x_train, y_train, ... or 'embedded'")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--protocol", "protocols", multiple=True, default=["one_class_normal"])
@click.option("--classes", default="2,5,1,9")
@click.option("--variants", default="gaia,began")
@click.option("--set", "overrides", multiple=True, help="adae.key=value on top of every variant, e.g. adae.width=64")
@click.option("--cap", default=650, help="updates per run")
@click.option("--every", default=50, help="evaluate every N updates")
@click.option("--test-size", default=600, help="study test images (held-out normals and anomalies)")
@click.option("--threads", default=1)
@click.option("--seed", default=0)
def run(data, out, protocols, classes, variants, overrides, cap, every, test_size, threads, seed) -> None:
    """Train every (variant, protocol, class) not yet in OUT/runs and record its curves, scores and floors."""
    torch.set_num_threads(threads)
    params = load_params()
    extra = method_overrides(overrides)
    if set(extra) - {"adae"}:
        raise click.BadParameter(f"--set takes adae.key=value only, not {sorted(set(extra) - {'adae'})}")
    extra = extra.get("adae", {})
    images, labels = load_images(data)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    with (out / "command.txt").open("a") as f:
        f.write(" ".join(["python", *sys.argv]) + "\n")
    for variant in variants.split(","):
        if variant not in VARIANTS:
            raise click.BadParameter(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        for protocol in protocols:
            for cls in map(int, classes.split(",")):
                # seed 0 keeps the name the first studies were written under
                path = out / "runs" / (f"{variant}_{protocol}_{cls}" + (f"_seed{seed}" if seed else "") + ".json")
                settings = {**VARIANTS[variant], **extra}
                if path.is_file():
                    if json.loads(path.read_text())["settings"] != settings:
                        raise click.UsageError(f"{path} was trained with other settings; give another --out")
                    continue
                split = study_split(labels, protocol, cls, test_size, params.split.val_fraction, seed)
                train, val, test = (image_set(images, labels, split[p]) for p in ("train", "val", "test"))
                anomalous = anomaly_labels(protocol, labels[split["test"]], cls).astype(bool)
                config = study_config(params, "adae", images.shape[1], {"adae": settings}, cap, threads)
                print(f"{variant} {protocol} class {cls}: {len(train)} train, {len(test)} study test", flush=True)
                seed_everything(seed * 1000 + cls)
                method = method_class("adae")(config, images.shape[1], torch.device("cpu"))
                claim = ClaimRun(method, (train, val, test), anomalous, every)
                method.fit(train, val, claim)
                record = {
                    "variant": variant,
                    "protocol": protocol,
                    "class": cls,
                    "seed": seed,
                    "settings": settings,
                    "data": data if data == "embedded" else Path(data).name,
                    "floors": floor_aurocs(train.x.numpy(), test.x.numpy(), anomalous),
                    "steps": claim.steps,
                    "evals": claim.evals,
                }
                save_reconstructions(method, test, anomalous, path.with_suffix(".npz"))
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(record))
                tmp.replace(path)


def save_reconstructions(method, test, anomalous: np.ndarray, path: Path, count: int = 4) -> None:
    """x, G(x) and D(G(x)) of the first `count` normal and anomalous study test images, as uint8, for the report's
    reconstruction figure (written before the run's record, which marks the run done)."""
    index = np.concatenate([np.flatnonzero(~anomalous)[:count], np.flatnonzero(anomalous)[:count]])
    x = test.x[index].numpy()
    g, dg = method.reconstructions(x)
    to_uint8 = lambda a: np.clip((a + 1) * 127.5, 0, 255).round().astype(np.uint8)  # noqa: E731
    np.savez(path, x=to_uint8(x), g=to_uint8(g), dg=to_uint8(dg), anomalous=anomalous[index])


def load_runs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def summary(runs: list[dict]) -> pd.DataFrame:
    """One row per run and evaluation kept: the last evaluation, and the one `select: best_val` would keep (the
    lowest normal-validation score); G's error is the mean of the last 20 updates before it."""
    rows = []
    for r in runs:
        evals, steps = pd.DataFrame(r["evals"]), pd.DataFrame(r["steps"])
        for kept, at in (("last", len(evals) - 1), ("best_val", int(evals["val_score"].idxmin()))):
            e = evals.iloc[at]
            recent = steps[(steps["update"] > e["update"] - 20) & (steps["update"] <= e["update"])]
            rows.append(
                {
                    "variant": r["variant"],
                    "protocol": r["protocol"],
                    "class": r["class"],
                    "seed": r.get("seed", 0),
                    "kept": kept,
                    "update": int(e["update"]),
                    "gen_rec": recent["gen_rec"].mean(),
                    "fake_weight": recent["fake_weight"].mean(),
                    "g_spread": e["g_spread"],
                    "grad_cos": e["grad_cos"],
                    "grad_ratio": e["grad_ratio"],
                    **{s: e[s] for s in (*SCORES, "d_of_g_banded")},
                    **{f: r["floors"][f] for f in FLOORS},
                }
            )
    return pd.DataFrame(rows)


def plot(runs: list[dict], variant: str, protocol: str, path: Path) -> None:
    """Seed 0's per-update curves, one column per class."""
    mine = [r for r in runs if r["variant"] == variant and r["protocol"] == protocol and not r.get("seed", 0)]
    fig = Figure(figsize=(4 * len(mine), 6.5))
    FigureCanvasAgg(fig)
    for i, r in enumerate(sorted(mine, key=lambda r: r["class"])):
        steps = pd.DataFrame(r["steps"]).set_index("update")
        top, bottom = fig.add_subplot(2, len(mine), i + 1), fig.add_subplot(2, len(mine), len(mine) + i + 1)
        for key in ("gen_rec", "real_rec", "fake_rec"):
            top.plot(steps.index, steps[key].rolling(10, min_periods=1).mean(), label=key)
        top.set_title(f"class {r['class']}")
        top.set_ylim(0, 1.1)
        bottom.plot(steps.index, steps["lr_g"] / (steps["lr_d"] + steps["lr_g"]), label="lr_G / (lr_D + lr_G)")
        bottom.plot(steps.index, steps["fake_weight"], label="D's fake-term weight")
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel("update")
    fig.axes[0].legend(fontsize=7)
    fig.axes[1].legend(fontsize=7)
    fig.suptitle(f"ADAE {variant}, {protocol}: per-update errors (rolling mean of 10) and balancing")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_reconstructions(out: Path, runs: list[dict], variant: str, protocol: str, path: Path) -> bool:
    """Per class a row of (x, G(x), D(G(x))) triples, normal images first, from OUT/runs/*.npz; False if none."""
    mine = sorted(
        (r for r in runs if r["variant"] == variant and r["protocol"] == protocol and not r.get("seed", 0)),
        key=lambda r: r["class"],
    )
    saved = [(r["class"], out / "runs" / f"{variant}_{protocol}_{r['class']}.npz") for r in mine]
    saved = [(cls, np.load(f)) for cls, f in saved if f.is_file()]
    if not saved:
        return False
    count = len(saved[0][1]["x"])
    fig = Figure(figsize=(1.2 * 3 * count, 1.3 * len(saved)))
    FigureCanvasAgg(fig)
    for row, (cls, arrays) in enumerate(saved):
        for i in range(count):
            for j, key in enumerate(("x", "g", "dg")):
                ax = fig.add_subplot(len(saved), 3 * count, row * 3 * count + 3 * i + j + 1)
                ax.imshow(arrays[key][i].transpose(1, 2, 0).squeeze(), cmap="gray", vmin=0, vmax=255)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    kind = "anomalous" if arrays["anomalous"][i] else "normal"
                    ax.set_title({"x": f"x ({kind})", "g": "G(x)", "dg": "D(G(x))"}[key], fontsize=7)
            if i == 0:
                fig.axes[-3].set_ylabel(f"class {cls}", fontsize=8)
    fig.suptitle(f"ADAE {variant}, {protocol}: study test images at the end of training", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    return True


def comparison(table: pd.DataFrame, protocol: str, study: Path | None, others: list[str], dataset: str):
    """Per class of one protocol (the evaluation `select: best_val` keeps; the mean over seeds): each variant's
    scores, the higher floor,
    each other method's plateau in a convergence study on the same data and study split, and the paper's value."""
    from ganad.evaluation.papers import paper_rows

    part = table[(table["protocol"] == protocol) & (table["kept"] == "best_val")]
    wide = part.pivot_table(index="class", columns="variant", values=[*SCORES, "d_of_g_banded"])
    order = ["d_of_g", "d_of_g_banded", "g", "d", "amplification"]
    columns = sorted(wide.columns, key=lambda c: (c[1], order.index(c[0])))
    wide = wide[columns]
    wide.columns = [f"{variant} {score}" for score, variant in columns]
    wide["floor"] = part.assign(floor=part[list(FLOORS)].max(axis=1)).groupby("class")["floor"].mean()
    if study is not None and (study / "summary.csv").is_file():
        summary = pd.read_csv(study / "summary.csv")
        for method in others:
            rows = summary[(summary["method"] == method) & (summary["protocol"] == protocol)]
            plateaus = {int(c): v for c, v in zip(rows["class"], rows["plateau_auroc"]) if str(c).isdigit()}
            wide[f"{method} (study plateau)"] = [plateaus.get(int(c), np.nan) for c in wide.index]
    paper = paper_rows(dataset, protocol).get("adae")
    if paper:
        wide["paper (test set)"] = [paper[int(c)] for c in wide.index]
    wide.loc["mean"] = wide.mean()
    return wide


@main.command()
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--study", type=click.Path(path_type=Path), help="a convergence study on the same data and split")
@click.option("--compare", default="dcae", help="methods of --study to set beside ADAE, comma-separated")
@click.option("--dataset", default="mnist", help="whose paper rows to show")
def report(out, study, compare, dataset) -> None:
    """OUT/summary.csv, OUT/README.md and one figure per variant and protocol, from OUT/runs."""
    runs = load_runs(out)
    if not runs:
        raise click.UsageError(f"{out}/runs holds no finished run; run `adae_claim.py run` first")
    table = summary(runs)
    table.to_csv(out / "summary.csv", index=False, float_format="%.4f")
    lines = [
        "# ADAE: does G learn, and does D amplify anomalies? (study split)",
        "",
        "Generated by `benchmarks/adae_claim.py report`; commands in [command.txt](command.txt). Every AUROC is on",
        "a study split of the official training images (held-out normals and anomalies), never on the test",
        "images the tables report. `gen_rec`: G's error |X - G(X)| over the last 20 updates (images in [-1, 1]);",
        "`g_spread`: per-pixel spread of G(x) over validation images (about 0: G gives one image whatever x);",
        "`grad_cos`, `grad_ratio`: the cosine and norm ratio of G's adversarial gradient to its reconstruction",
        "gradient on a training batch (cosine near -1, ratio near 1: the adversarial term cancels G's learning);",
        "`amplification`: AUROC of ||x - D(G(x))|| / ||x - G(x)|| (above 0.5: D enlarges anomalies' errors more",
        "than normals', the paper's claim); `d_of_g_banded`: the paper's score within five bands of brightness;",
        "floors: scorers that learn nothing on the same split. `kept`: the last evaluation, or the one",
        "`select: best_val` keeps (lowest normal-validation score).",
        "",
    ]
    cols = ["update", "gen_rec", "g_spread", "grad_cos", "grad_ratio", "fake_weight", *SCORES, "d_of_g_banded", *FLOORS]
    for (protocol, kept), part in table.groupby(["protocol", "kept"], sort=False):
        lines += [f"## {protocol}, {kept}", ""]
        per_class = part[["variant", "class", "seed", *cols]].astype({"class": str})
        means = part.groupby("variant")[cols].mean().reset_index().assign(**{"class": "mean"})
        both = pd.concat([per_class, means]).sort_values(["variant", "class", "seed"], key=lambda c: c.astype(str))
        lines += [both.round(3).to_markdown(index=False), ""]
    for protocol in sorted({r["protocol"] for r in runs}):
        lines += [
            f"## {protocol}: every score against the floor, the compared methods and the paper (best_val)",
            "",
            "Study AUROCs per class, ADAE's and the floor's averaged over the seeds that ran (the compared methods'",
            "plateaus are on the study split of seed 0; the paper's values are on its test set, for scale only).",
            "",
            comparison(table, protocol, study, [m for m in compare.split(",") if m], dataset).round(3).to_markdown(),
            "",
        ]
    for variant, protocol in sorted({(r["variant"], r["protocol"]) for r in runs}):
        name = f"curves_{variant}_{protocol}.png"
        plot(runs, variant, protocol, out / name)
        lines.append(f"![{variant} {protocol}]({name})")
        recon = f"reconstructions_{variant}_{protocol}.png"
        if plot_reconstructions(out, runs, variant, protocol, out / recon):
            lines.append(f"![{variant} {protocol} reconstructions]({recon})")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/README.md")


if __name__ == "__main__":
    main()
