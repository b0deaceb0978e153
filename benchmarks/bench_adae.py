"""ADAE on real MNIST, leave one class out: AUROC against the paper, and training speed.

Accuracy (default): for each anomalous class, pool MNIST's official train and test
images, resize to 32x32, split with `protocols.leave_one_class_out` (the pipeline's
seed stream), train ADAE for `--epochs` on the training normals (optionally a random
`--train-size` subset) and score the held-out test split. Prints our AUROC, the
paper's (ADAE Table 1), the difference, training and scoring images/s.

    .venv/bin/python benchmarks/bench_adae.py --classes 9 --epochs 5 --train-size 5000

The accuracy run ends with the speed comparison below on the same data, in the same
process (`--no-speed-check` skips it), so the speed-up is measured beside the AUROCs.

Speed (`--speed`): times a plain ADAE step (float32 contiguous tensors, default
Adam, the textbook two-loss code with a second forward of G(X) through D) against
the step `ganad.methods.adae.model.ADAE` takes, in interleaved rounds within one process
so that both see the same machine load; prints images/s (wall and per CPU-second)
of each and the ratio, and checks first that both give the same update.

    .venv/bin/python benchmarks/bench_adae.py --speed --ablation --threads 1
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ganad.data.images import ImageSet, resize_uint8, to_nchw, to_unit_range  # noqa: E402
from ganad.data.protocols import PROTOCOLS, leave_one_class_out  # noqa: E402
from ganad.data.sources import load_npz  # noqa: E402
from ganad.evaluation.papers import PAPER_AUROC  # noqa: E402
from ganad.methods.adae import Config as ADAEConfig  # noqa: E402
from ganad.methods.adae.model import ADAE, adae_losses, balanced_lrs  # noqa: E402
from ganad.methods.common import nets  # noqa: E402
from ganad.methods.common.training import images_used, per_image_l1, torch_threads  # noqa: E402
from ganad.methods.common.training_run import TrainingRun  # noqa: E402


def load_mnist(path: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pooled [official train | official test] images as uint8 (N, 1, 32, 32), and labels."""
    raw = load_npz("mnist", path)
    x = np.concatenate([to_nchw(raw.x_train), to_nchw(raw.x_test)])
    y = np.concatenate([raw.y_train, raw.y_test])
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return resize_uint8(x), y


# --------------------------------------------------------------------------- speed


class PlainStep:
    """The textbook ADAE step: two losses, G(X) through D twice, default Adam, contiguous float32.

    Same update as `ADAE.train_step` (both gradients at the same parameters, then both
    optimisers step); D's gradient from L_G is computed and thrown away.
    """

    def __init__(self, cfg: ADAEConfig, channels: int, state: dict):
        self.cfg = cfg
        self.G = nets.AutoEncoder(channels, cfg.latent_dim, cfg.width)
        self.D = nets.AutoEncoder(channels, cfg.latent_dim, cfg.width)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))

    def __call__(self, x: torch.Tensor) -> None:
        self.G.train()
        self.D.train()
        fake = self.G(x)
        real_rec = per_image_l1(x, self.D(x)).mean()
        fake_rec_d = per_image_l1(fake.detach(), self.D(fake.detach())).mean()
        loss_d = real_rec - fake_rec_d
        loss_g = per_image_l1(x, fake).mean() + per_image_l1(fake, self.D(fake)).mean()
        if self.cfg.balance not in ("lr", "none"):
            raise click.UsageError("the plain step is the paper's (balance lr or none); the speed check needs one")
        slope = self.cfg.slope / 2 if self.cfg.slope_units == "unit" else self.cfg.slope
        lr_d, lr_g = balanced_lrs(self.cfg.lr, slope, real_rec.item(), fake_rec_d.item(), self.cfg.balance == "lr")
        self.opt_d.param_groups[0]["lr"] = lr_d
        self.opt_g.param_groups[0]["lr"] = lr_g
        self.opt_d.zero_grad()
        self.opt_g.zero_grad()
        loss_d.backward()
        d_grads = [p.grad.clone() for p in self.D.parameters()]
        loss_g.backward()
        for p, g in zip(self.D.parameters(), d_grads):
            p.grad = g
        self.opt_d.step()
        self.opt_g.step()


def _grads(net):
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def optimised_step(cfg: ADAEConfig, channels: int, state: dict):
    """`ADAE.train_step` from the weights `state` ({"G", "D"}), fed as the epoch loop feeds it: nets in
    train mode, each batch moved to the method's memory format (`NeuralMethod._input`)."""
    m = ADAE(cfg, channels, torch.device("cpu"))
    m.G.load_state_dict(state["G"])
    m.D.load_state_dict(state["D"])
    m._mode(True)

    def step(x: torch.Tensor) -> dict[str, float]:
        return m.train_step(m._input(x))

    step.method = m
    return step


def speed(x: torch.Tensor, cfg: ADAEConfig, rounds: int, steps: int, ablation: bool, seed: int) -> None:
    torch.manual_seed(seed)
    channels = x.shape[1]
    opt = ADAE(cfg, channels, torch.device("cpu"))
    state = {"G": opt.G.state_dict(), "D": opt.D.state_dict()}
    bs = cfg.batch_size
    batch = [x[i * bs : (i + 1) * bs] for i in range(len(x) // bs)]

    # Same update? One step of each from the same weights on the same batch.
    plain = PlainStep(cfg, channels, state)
    check_step = optimised_step(cfg, channels, state)
    check = check_step.method
    plain(batch[0])
    check_step(batch[0])
    # The scale of float32 rounding here: the same gradients in float64.
    G64 = nets.AutoEncoder(channels, cfg.latent_dim, cfg.width).double()
    D64 = nets.AutoEncoder(channels, cfg.latent_dim, cfg.width).double()
    G64.load_state_dict(state["G"])
    D64.load_state_dict(state["D"])
    adae_losses(G64, D64, batch[0].double())[-1].backward()
    for net, net64 in (("G", G64), ("D", D64)):
        g_plain, g_opt, g64 = _grads(getattr(plain, net)), _grads(getattr(check, net)), _grads(net64).float()
        rel = ((g_plain - g_opt).norm() / g_plain.norm()).item()
        plain64 = ((g_plain - g64).norm() / g64.norm()).item()
        opt64 = ((g_opt - g64).norm() / g64.norm()).item()
        print(
            f"same update check, {net}: |grad_plain - grad_optimised| / |grad_plain| = {rel:.1e}; "
            f"each against float64: plain {plain64:.1e}, optimised {opt64:.1e}"
        )
    # channels_last BatchNorm accumulates its batch statistics in float32 (the contiguous kernel in
    # float64), about 10x the rounding per BatchNorm layer; through two autoencoders and the L1 terms
    # the optimised gradients end up further from float64 than the plain ones (G: 2.6e-4 against
    # 5.1e-5 at width 64, 3.5e-4 against 1.7e-6 at width 16). Same arithmetic, different rounding:
    # with `--contiguous` the two steps give bit-identical gradients.

    variants = {"plain": PlainStep(cfg, channels, state)}
    if ablation:
        for name, kw in [
            ("one D pass", dict(channels_last=False, adam="loop")),
            ("+ fused Adam", dict(channels_last=False, adam="fused")),
            ("+ channels_last", dict(channels_last=True, adam="fused")),
        ]:
            variants[name] = optimised_step(ADAEConfig(**{**cfg.model_dump(), **kw}), channels, state)
    variants["optimised"] = optimised_step(cfg, channels, state)

    print(
        f"timing: width {cfg.width}, batch {bs}, {channels} channel(s), threads {torch.get_num_threads()}, "
        f"{rounds} interleaved rounds x {steps} steps; optimised = channels_last {cfg.channels_last}, "
        f"adam {cfg.adam}, compile {cfg.compile}"
    )
    for step in variants.values():  # warm-up
        step(batch[0])
    wall = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for r in range(rounds):
        for name, step in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for s in range(steps):
                step(batch[(r * steps + s) % len(batch)])
            wall[name].append(steps * bs / (time.perf_counter() - t0))
            cpu[name].append(steps * bs / (time.process_time() - c0))
    for name in variants:
        print(
            f"  {name:16s} {statistics.median(wall[name]):7.1f} img/s wall   "
            f"{statistics.median(cpu[name]):7.1f} img/CPU-s   (rounds: {' '.join(f'{v:.0f}' for v in wall[name])})"
        )
    for name in variants:
        if name == "plain":
            continue
        ratio_wall = statistics.median(w / p for w, p in zip(wall[name], wall["plain"]))
        ratio_cpu = statistics.median(w / p for w, p in zip(cpu[name], cpu["plain"]))
        print(f"  ratio {name} / plain: {ratio_wall:.2f}x wall, {ratio_cpu:.2f}x per CPU-second")


# --------------------------------------------------------------------------- accuracy


class TimedRun(TrainingRun):
    def __init__(self):
        super().__init__(None, "bench", None)

    def end_epoch(self, method, epoch, metrics):
        super().end_epoch(method, epoch, metrics)
        print(f"    epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)


def accuracy(
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[int],
    cfg: ADAEConfig,
    seed: int,
    train_size: int | None,
    test_size: int | None,
) -> None:
    from sklearn.metrics import roc_auc_score

    paper = PAPER_AUROC[("mnist", "leave_one_class_out")]["adae"]
    rows = []
    for cls in classes:
        # the seed stream protocols.make_splits gives this class
        rng = np.random.default_rng([seed, PROTOCOLS.index("leave_one_class_out"), cls])
        split = leave_one_class_out(labels, cls, rng)
        pick = np.random.default_rng([seed, 99, cls])
        train_idx, val_idx, test_idx = split["train"], split["val"], split["test"]
        if train_size is not None and train_size < len(train_idx):
            n_val = max(1, round(len(val_idx) * train_size / len(train_idx)))
            val_idx = np.sort(pick.choice(val_idx, n_val, replace=False))
            train_idx = np.sort(pick.choice(train_idx, train_size, replace=False))
        if test_size is not None and test_size < len(test_idx):
            test_idx = np.sort(pick.choice(test_idx, test_size, replace=False))
        sets = {
            name: ImageSet(to_unit_range(images[idx]), labels[idx], idx)
            for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        }
        torch.manual_seed(seed * 1000 + cls)
        method = ADAE(cfg, 1, torch.device("cpu"))
        print(
            f"class {cls}: train {len(train_idx)}, val {len(val_idx)}, test {len(test_idx)} "
            f"({int((labels[test_idx] == cls).sum())} anomalous)",
            flush=True,
        )
        t0 = time.perf_counter()
        method.fit(sets["train"], sets["val"], TimedRun())
        fit_s = time.perf_counter() - t0
        seen = ADAE.epochs(cfg, len(train_idx)) * images_used(len(train_idx), cfg.batch_size, cfg.drop_last)
        t0 = time.perf_counter()
        scores = method.score(sets["test"])
        score_s = time.perf_counter() - t0
        auc = roc_auc_score((labels[test_idx] == cls).astype(int), scores)
        if method.selected():
            print(f"class {cls}: scoring the weights of {method.selected()}")
        rows.append((cls, auc, paper[cls], seen / fit_s, len(test_idx) / score_s))
        print(f"class {cls}: AUROC {auc:.3f} (paper {paper[cls]:.3f})", flush=True)
    print()
    print(f"{'class':>5} {'ours':>6} {'paper':>6} {'diff':>7} {'train img/s':>12} {'score img/s':>12}")
    for cls, auc, ref, tr, sc in rows:
        print(f"{cls:>5} {auc:6.3f} {ref:6.3f} {auc - ref:+7.3f} {tr:12.1f} {sc:12.1f}")
    if len(rows) > 1:
        mean = lambda i: float(np.mean([r[i] for r in rows]))  # noqa: E731
        print(f"{'mean':>5} {mean(1):6.3f} {mean(2):6.3f} {mean(1) - mean(2):+7.3f} {mean(3):12.1f} {mean(4):12.1f}")
    print("train img/s = images trained / fit time (includes the per-epoch validation scoring)")


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="MNIST npz (x_train, y_train, x_test, y_test), e.g. a local copy of MNIST",
)
@click.option("--classes", default="9", show_default=True, help="anomalous classes, comma-separated")
@click.option("--epochs", default=5, show_default=True, type=int)
@click.option("--train-size", default=None, type=int, help="random subset of the training normals")
@click.option("--test-size", default=None, type=int, help="random subset of the test split")
@click.option("--width", default=64, show_default=True, type=int)
@click.option("--latent-dim", default=32, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--lr", default=1e-5, show_default=True, type=float)
@click.option("--balance", default="lr", show_default=True, type=click.Choice(["lr", "gaia", "began", "none"]))
@click.option("--slope-units", default="image", show_default=True, type=click.Choice(["image", "unit"]))
@click.option(
    "--select",
    default="last",
    show_default=True,
    type=click.Choice(["last", "best_val"]),
    help="weights scored: last epoch (paper) or lowest normal-validation score",
)
@click.option("--channels-last/--contiguous", default=True, show_default=True)
@click.option("--adam", default="fused", show_default=True, type=click.Choice(["fused", "foreach", "loop"]))
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True)
@click.option("--threads", default=0, show_default=True, type=int, help="torch threads (0: torch's default)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--speed", "speed_mode", is_flag=True, help="only time the plain step against the optimised one")
@click.option(
    "--speed-check/--no-speed-check",
    default=True,
    show_default=True,
    help="after the accuracy run, time the plain step against the optimised one in the same process",
)
@click.option("--ablation", is_flag=True, help="with --speed: also time each optimisation on its own")
@click.option("--rounds", default=5, show_default=True, type=int, help="--speed: interleaved rounds")
@click.option("--steps", default=3, show_default=True, type=int, help="--speed: steps per variant and round")
def main(
    data,
    classes,
    epochs,
    train_size,
    test_size,
    width,
    latent_dim,
    batch_size,
    lr,
    balance,
    slope_units,
    select,
    channels_last,
    adam,
    compile_,
    threads,
    seed,
    speed_mode,
    speed_check,
    ablation,
    rounds,
    steps,
):
    """ADAE on MNIST, leave one class out: AUROC vs the paper, or (--speed) step throughput."""
    cfg = ADAEConfig(
        latent_dim=latent_dim,
        width=width,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        balance=balance,
        slope_units=slope_units,
        select=select,
        channels_last=channels_last,
        adam=adam,
        compile=compile_,
        threads=threads,
    )
    with torch_threads(threads):
        if speed_mode:
            images, _ = load_mnist(data, limit=batch_size * 8)
            speed(to_unit_range(images), cfg, rounds, steps, ablation, seed)
            return
        images, labels = load_mnist(data)
        accuracy(images, labels, [int(c) for c in classes.split(",")], cfg, seed, train_size, test_size)
        if speed_check:
            print("\ntraining step speed in this run (the first batches of the pooled images):")
            speed(to_unit_range(images[: batch_size * 8]), cfg, rounds, steps, ablation, seed)


if __name__ == "__main__":
    main()
