"""ADAE's balancing variants on real MNIST, leave one class out: what keeps D an autoencoder.

For every (variant, anomalous class, seed) this trains ADAE on the class's training
normals (the pipeline's disjoint split from `protocols.make_splits`, or the leaky one
with --leaky), logs per epoch D's errors on real and generated images, G's
reconstruction, the fake-term weight, both learning rates and the normal-validation
score, and scores the test split after every epoch. The per-epoch test AUROC is an
ORACLE: no result may use it; it shows how much a test-set choice of epoch (the defect
of GANomaly's public code) could explain. Results: the AUROC of the last epoch and of the
epoch `best_val` picks on normal validation images only, beside the paper's.

    python benchmarks/ablate_adae.py --data mnist.npz --variants lr-image,gaia-unit \\
        --classes 0,1,5,9 --seeds 0 --epochs 3 --jobs 2 --out reports/ablation/adae_mnist
    python benchmarks/ablate_adae.py --summarise --out reports/ablation/adae_mnist

Each run writes <out>/<variant>/class<c>_seed<s>.json as it finishes (a rerun skips
finished runs); --summarise writes <out>/README.md from them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# variant name -> ADAE params on top of --width/--lr/... (the pipeline's method section keys)
VARIANTS = {
    "lr-image": {"balance": "lr", "slope": 20.0, "slope_units": "image"},  # ganad's default run until now
    "lr-unit": {"balance": "lr", "slope": 20.0, "slope_units": "unit"},  # the paper's text with GAIA's slope
    "gaia-unit": {"balance": "gaia", "slope": 20.0, "slope_units": "unit"},  # GAIA's code: lr sigmoid and gate
    "gaia-image": {"balance": "gaia", "slope": 20.0, "slope_units": "image"},
    "began": {"balance": "began", "began_lambda": 0.01},
    "none": {"balance": "none"},
}


def variant_params(name: str) -> dict:
    """`gaia-unit+joint` is gaia-unit with D's BatchNorm seeing real and generated images in one batch."""
    base, _, extra = name.partition("+")
    if base not in VARIANTS or extra not in ("", "joint"):
        raise click.BadParameter(f"unknown variant {name!r}; known: {sorted(VARIANTS)}, each optionally +joint")
    return {**VARIANTS[base], **({"bn": "joint"} if extra == "joint" else {})}


def run_name(variant: str, leaky: bool) -> str:
    return f"{variant}-leaky" if leaky else variant


def cpu_model() -> str:
    """The CPU's model name: float rounding, and so a GAN's trajectory, differs from one CPU to another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or "unknown"


def load_pooled(path: str):
    from ganad.data.images import resize_uint8, to_nchw
    from ganad.data.sources import load_npz

    raw = load_npz("mnist", path)
    x = resize_uint8(np.concatenate([to_nchw(raw.x_train), to_nchw(raw.x_test)]))
    return x, np.concatenate([raw.y_train, raw.y_test]), len(raw.y_train)


def one_run(job: dict) -> dict:
    """Train and evaluate one (variant, class, seed); returns the run's record."""
    import torch
    from sklearn.metrics import roc_auc_score

    from ganad.data.images import ImageSet, to_unit_range
    from ganad.data.protocols import make_splits
    from ganad.methods.adae.model import ADAE
    from ganad.methods.common.training_run import TrainingRun
    from ganad.runtime.device import seed_everything
    from ganad.schema import parse

    torch.set_num_threads(job["threads"])
    images, labels, n_train = load_pooled(job["data"])
    cls = job["cls"]
    split = make_splits("leave_one_class_out", labels, n_train, [cls], job["split_seed"], leaky=job["leaky"])[cls]
    sets = {k: ImageSet(to_unit_range(images[idx]), labels[idx], idx) for k, idx in split.items()}
    anomalous = (sets["test"].labels == cls).astype(int)
    if job.get("audit_leaky"):  # the same model scored on EGBAD's leaky test set too: the protocol's share
        leaky_test = make_splits("leave_one_class_out", labels, n_train, [cls], job["split_seed"], leaky=True)[cls][
            "test"
        ]
        sets["leaky_test"] = ImageSet(to_unit_range(images[leaky_test]), labels[leaky_test], leaky_test)
    section = {**job["base"], **variant_params(job["variant"])}
    seed_everything(job["seed"] * 1000 + cls)
    method = ADAE(parse(ADAE.Config, section, "ablation"), 1, torch.device("cpu"))
    oracle = []

    class Logged(TrainingRun):
        def end_epoch(self, m, epoch, metrics):
            t = time.perf_counter()
            state = torch.get_rng_state()  # the oracle scoring must not change the training
            oracle.append(float(roc_auc_score(anomalous, m.score(sets["test"]))))
            torch.set_rng_state(state)
            metrics = {**metrics, "test_auroc_oracle": oracle[-1]}
            super().end_epoch(m, epoch, metrics)
            print(
                f"{job['variant']} class {cls} seed {job['seed']} epoch {epoch}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                + f" (+{time.perf_counter() - t:.0f} s test)",
                flush=True,
            )

    t0 = time.perf_counter()
    run = Logged(None, "ablation")
    method.fit(sets["train"], sets["val"], run)
    final = float(roc_auc_score(anomalous, method.score(sets["test"])))
    audit = {}
    if "leaky_test" in sets:
        leaky = sets["leaky_test"]
        leaky_normal = leaky.index[leaky.labels != cls]
        audit = {
            "auroc_leaky": float(roc_auc_score((leaky.labels == cls).astype(int), method.score(leaky))),
            "leaky_test_normals": len(leaky_normal),
            "leaky_test_normals_trained_on": int(np.isin(leaky_normal, split["train"]).sum()),
        }
    record = {
        "variant": job["variant"],
        "class": cls,
        "seed": job["seed"],
        "leaky": job["leaky"],
        "params": section,
        "train": len(split["train"]),
        "val": len(split["val"]),
        "test": len(split["test"]),
        "updates": len(run.history) * (len(split["train"]) // section["batch_size"]),
        "history": run.history,
        "auroc": final,
        "selected": method.selected(),
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        **audit,
    }
    out = Path(job["out"]) / run_name(job["variant"], job["leaky"]) / f"class{cls}_seed{job['seed']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def summarise(out: Path) -> str:
    from ganad.evaluation.papers import PAPER_AUROC

    paper = PAPER_AUROC[("mnist", "leave_one_class_out")]["adae"]
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/class*_seed*.json"))]
    lines = [
        "# ADAE balancing ablation, real MNIST, leave-one-class-out",
        "",
        "Generated by `benchmarks/ablate_adae.py --summarise`; each row is one run. `AUROC` is the model the",
        "pipeline would keep (`select` in its params: the last epoch, or the epoch with the lowest normal-",
        "validation score); `oracle` columns use test labels per epoch and are for reading only: no result",
        "may be chosen by them.",
        "",
        "| variant | class | seed | updates | AUROC | paper | val-chosen epoch | oracle best epoch (AUROC) | "
        "oracle AUROC over epochs (min-max) | real_rec first -> last | fake_rec last | gen_rec first -> last | "
        "val_score first -> last | weight last | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        h = r["history"]
        o = [e["test_auroc_oracle"] for e in h]
        best = int(np.argmax(o))
        chosen = r["selected"].get("best_epoch", len(h) - 1)
        weight = h[-1].get("fake_weight", 1.0)
        lines.append(
            f"| {r['variant']}{' (leaky)' if r['leaky'] else ''} | {r['class']} | {r['seed']} | {r['updates']} | "
            f"{r['auroc']:.3f} | {paper[r['class']]:.3f} | {chosen} | {best} ({o[best]:.3f}) | "
            f"{min(o):.3f}-{max(o):.3f} | {h[0]['real_rec']:.3f} -> {h[-1]['real_rec']:.3f} | "
            f"{h[-1]['fake_rec']:.3f} | {h[0]['gen_rec']:.3f} -> {h[-1]['gen_rec']:.3f} | "
            f"{h[0]['val_score']:.2f} -> {h[-1]['val_score']:.2f} | {weight:.3f} | {r['seconds'] / 60:.1f} |"
        )
    variants = sorted({r["variant"] for r in records})
    lines += [
        "",
        "Mean AUROC per variant over the classes it ran (the paper's mean over the same classes):",
        "",
        "| variant | runs | AUROC | oracle best-epoch AUROC | paper |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        rs = [r for r in records if r["variant"] == v]
        lines.append(
            f"| {v} | {len(rs)} | {np.mean([r['auroc'] for r in rs]):.3f} | "
            f"{np.mean([max(e['test_auroc_oracle'] for e in r['history']) for r in rs]):.3f} | "
            f"{np.mean([paper[r['class']] for r in rs]):.3f} |"
        )
    audited = [r for r in records if "auroc_leaky" in r]
    if audited:
        lines += [
            "",
            "The leaky-split audit: the same model (trained on the disjoint split) scored on the disjoint "
            "test set and on EGBAD's leaky one, whose normal images come from a second permutation of the "
            "normal pool, so most of them were trained on:",
            "",
            "| variant | class | seed | AUROC disjoint | AUROC leaky | leaky - disjoint | "
            "leaky test normals trained on |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in audited:
            lines.append(
                f"| {r['variant']} | {r['class']} | {r['seed']} | {r['auroc']:.3f} | {r['auroc_leaky']:.3f} | "
                f"{r['auroc_leaky'] - r['auroc']:+.3f} | {r['leaky_test_normals_trained_on']} of "
                f"{r['leaky_test_normals']} |"
            )
        lines.append(
            f"| mean | | | {np.mean([r['auroc'] for r in audited]):.3f} | "
            f"{np.mean([r['auroc_leaky'] for r in audited]):.3f} | "
            f"{np.mean([r['auroc_leaky'] - r['auroc'] for r in audited]):+.3f} | |"
        )
    text = "\n".join(lines) + "\n"
    (out / "README.md").write_text(text)
    return text


@click.command()
@click.option(
    "--data", type=click.Path(exists=True, dir_okay=False), help="MNIST npz (x_train, y_train, x_test, y_test)"
)
@click.option("--variants", default="lr-image,gaia-unit", show_default=True)
@click.option("--classes", default="0,1,5,9", show_default=True)
@click.option("--seeds", default="0", show_default=True, help="training seeds (the split seed stays --split-seed)")
@click.option("--split-seed", default=0, show_default=True, type=int)
@click.option("--leaky", is_flag=True, help="train and test on EGBAD's overlapping split, for the audit only")
@click.option(
    "--audit-leaky",
    is_flag=True,
    help="train on the disjoint split and score the kept model on both test sets (reruns runs without it)",
)
@click.option("--epochs", default=3, show_default=True, type=int)
@click.option("--width", default=64, show_default=True, type=int)
@click.option("--latent-dim", default=32, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option("--select", default="best_val", show_default=True, type=click.Choice(["last", "best_val"]))
@click.option("--jobs", default=1, show_default=True, type=int, help="runs at once, one process each")
@click.option(
    "--threads",
    default=0,
    show_default=True,
    type=int,
    help="torch threads per run (0: the CPU's cores shared among the jobs); 1 leaves a core free",
)
@click.option("--out", default="reports/ablation/adae_mnist", show_default=True, type=click.Path(file_okay=False))
@click.option("--summarise", "only_summarise", is_flag=True, help="only write <out>/README.md from finished runs")
def main(
    data,
    variants,
    classes,
    seeds,
    split_seed,
    leaky,
    audit_leaky,
    epochs,
    width,
    latent_dim,
    batch_size,
    lr,
    select,
    jobs,
    threads,
    out,
    only_summarise,
):
    """Run the ablation (see the module docstring); finished runs are kept and skipped."""
    out = Path(out)
    if not only_summarise:
        if data is None:
            raise click.UsageError("--data is required: an MNIST npz with x_train, y_train, x_test, y_test")
        base = {
            "latent_dim": latent_dim,
            "width": width,
            "epochs": epochs,
            "min_steps": 0,
            "batch_size": batch_size,
            "lr": lr,
            "select": select,
            "threads": 0,
        }
        threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        todo = []
        for seed in (int(s) for s in seeds.split(",")):  # variants innermost: paired runs finish together
            for cls in (int(c) for c in classes.split(",")):
                for variant in variants.split(","):
                    variant_params(variant)
                    done = out / run_name(variant, leaky) / f"class{cls}_seed{seed}.json"
                    if done.is_file() and (not audit_leaky or "auroc_leaky" in json.loads(done.read_text())):
                        continue
                    todo.append(
                        {
                            "variant": variant,
                            "cls": cls,
                            "seed": seed,
                            "split_seed": split_seed,
                            "leaky": leaky,
                            "audit_leaky": audit_leaky,
                            "base": base,
                            "data": data,
                            "threads": threads,
                            "out": str(out),
                        }
                    )
        print(f"{len(todo)} runs, {jobs} at a time, {threads} threads each", flush=True)
        if jobs == 1:
            for job in todo:
                one_run(job)
        else:
            import multiprocessing

            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for record in pool.map(one_run, todo):
                    print(
                        f"done: {record['variant']} class {record['class']} seed {record['seed']}: "
                        f"AUROC {record['auroc']:.3f}",
                        flush=True,
                    )
    print(summarise(out))


if __name__ == "__main__":
    main()
