"""ADAE: adversarial dual autoencoders (Vu et al. 2019), scored by D's reconstruction of G(x).

Generator G and discriminator D are two DCGAN-shaped autoencoders of the same
shape (`nets.AutoEncoder`, DCGAN init). With |a - b| the per-image mean absolute
error averaged over the batch:

    L_D = |X - D(X)| - |G(X) - D(G(X))|      (G(X) detached: only D learns)
    L_G = |X - G(X)| + |G(X) - D(G(X))|      (only G learns)

Learning rates are balanced at every step as in GAIA (Sainburg et al.), which the
paper cites: with r = |X - D(X)| - |G(X) - D(G(X))| (batch means, no gradient),
lr_D = lr * sigmoid(slope * r) and lr_G = lr * sigmoid(-slope * r); the network
that is losing speeds up. `balance: false` gives both networks `lr`.

Score: A(x) = ||x - D(G(x))||_2 per image, BatchNorm in eval mode.

Choices that are ours (the paper has no code):

- Both gradients of a step are taken at the same parameters and both optimisers
  then step (simultaneous updates, as GAIA's own training step does). This lets
  one forward pass of G(X) through D serve both losses: a gradient-reversal on
  G(X) in the adversarial term makes a single backward pass of
  `L_D + |X - G(X)|` give D exactly dL_D/dD and G exactly dL_G/dG (proved
  against the two separate losses in tests/test_adae.py). BatchNorm in D sees
  the real batch and the generated batch in separate forward passes, as with two
  separate losses; its running statistics (used when scoring) thus average over
  both kinds of batch.
- The last incomplete batch of an epoch is dropped (`drop_last`), so every
  BatchNorm batch has `batch_size` images; batches are reshuffled every epoch.
- `select: best_val` keeps the weights of the epoch whose mean score on the normal
  validation slice was lowest (x -> G -> D reconstructs normal data best, which is
  what the paper's argument for the score needs); `last` (the paper) keeps the
  final epoch. Short runs oscillate as G and D trade places, so the last epoch
  can be a bad one. No test data and no anomaly labels are involved.
- `min_steps` raises the epoch count for small training sets (see
  `training.epochs_for`); 0 keeps the paper's epochs.
- CPU speed settings (`channels_last`, `adam`, `compile`, `threads`) change how
  the numbers are computed, not what they mean; see benchmarks/bench_adae.py.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .. import nets
from ..images import ImageSet
from ..training import batches, epochs_for
from .base import Method, flag, fraction, non_negative_int, one_of, positive, positive_int


ADAM_IMPLS = ("fused", "foreach", "loop")
SELECT = ("last", "best_val")


@dataclass
class ADAEConfig:
    latent_dim: int = positive_int(32)
    width: int = positive_int(64)
    epochs: int = positive_int(100)
    min_steps: int = non_negative_int(0)  # see training.epochs_for
    batch_size: int = positive_int(64)
    lr: float = positive(1e-5)
    beta1: float = fraction(0.5)
    beta2: float = fraction(0.999)
    balance: bool = flag(True)
    slope: float = positive(20.0)
    score_batch_size: int = positive_int(256)
    drop_last: bool = flag(True)
    select: str = one_of("last", SELECT)
    # Speed only: what is computed stays the same (channels_last and compile change float rounding).
    channels_last: bool = flag(True)
    adam: str = one_of("fused", ADAM_IMPLS)
    compile: bool = flag(False)
    threads: int = non_negative_int(0, "an integer >= 0 (0 keeps torch's default)")


def per_image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of each image."""
    return (a - b).abs().flatten(1).mean(1)


def per_image_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image's difference, over all pixels and channels."""
    return (a - b).flatten(1).norm(dim=1)


class _ReverseGrad(torch.autograd.Function):
    """Identity forward, negated gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def reverse_grad(x: torch.Tensor) -> torch.Tensor:
    return _ReverseGrad.apply(x)


def adae_losses(G: torch.nn.Module, D: torch.nn.Module, x: torch.Tensor):
    """The three reconstruction terms (batch means) and the scalar whose gradient trains both nets.

    Returns (real_rec, fake_rec, gen_rec, objective): real_rec = |X - D(X)|,
    fake_rec = |G(X) - D(G(X))|, gen_rec = |X - G(X)|. `objective.backward()` leaves
    dL_D/dtheta_D in D's grads and dL_G/dtheta_G in G's: D's parameters see
    real_rec - fake_rec (gen_rec does not touch D); G sees gen_rec and, through the
    reversed G(X), +fake_rec (real_rec does not touch G).
    """
    fake = G(x)
    real_rec = per_image_l1(x, D(x)).mean()
    fake_rev = reverse_grad(fake)
    fake_rec = per_image_l1(fake_rev, D(fake_rev)).mean()
    gen_rec = per_image_l1(x, fake).mean()
    return real_rec, fake_rec, gen_rec, real_rec - fake_rec + gen_rec


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def balanced_lrs(lr: float, slope: float, real_rec: float, fake_rec: float, balance: bool = True):
    """GAIA's learning rates (lr_D, lr_G) from the batch's real and fake reconstruction errors."""
    if not balance:
        return lr, lr
    r = real_rec - fake_rec
    return lr * sigmoid(slope * r), lr * sigmoid(-slope * r)


@contextlib.contextmanager
def torch_threads(n: int):
    """Use `n` intra-op threads inside the block (0: leave torch's setting)."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ADAE(Method):
    name = "adae"
    Config = ADAEConfig

    def __init__(self, config: ADAEConfig, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.G = nets.AutoEncoder(channels, config.latent_dim, config.width)
        self.D = nets.AutoEncoder(channels, config.latent_dim, config.width)
        nets.dcgan_init(self.G)
        nets.dcgan_init(self.D)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.G.to(device=device, memory_format=self.memory_format)
        self.D.to(device=device, memory_format=self.memory_format)
        self.opt_g = self._adam(self.G)
        self.opt_d = self._adam(self.D)
        self._losses = torch.compile(adae_losses) if config.compile else adae_losses
        self.best: dict | None = None  # {"epoch", "val_score", "G", "D"} for select: best_val

    def _adam(self, net: torch.nn.Module) -> torch.optim.Adam:
        cfg = self.config
        impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[cfg.adam]
        if cfg.adam == "fused" and self.device.type not in ("cpu", "cuda", "mps", "xpu"):
            impl = {"foreach": True}
        return torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **impl)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def train_step(self, x: torch.Tensor, run=None, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One simultaneous update of G and D on batch `x`; returns the step's losses and learning rates."""
        cfg = self.config
        self.G.train()
        self.D.train()
        real_rec, fake_rec, gen_rec, objective = self._losses(self.G, self.D, self._input(x))
        real, fake, gen = real_rec.item(), fake_rec.item(), gen_rec.item()
        out = {"loss_d": real - fake, "loss_g": gen + fake, "real_rec": real, "fake_rec": fake, "gen_rec": gen}
        if run is not None:
            run.check_finite({"loss_d": out["loss_d"], "loss_g": out["loss_g"]}, epoch, step)
        lr_d, lr_g = balanced_lrs(cfg.lr, cfg.slope, real, fake, cfg.balance)
        for opt, lr in ((self.opt_d, lr_d), (self.opt_g, lr_g)):
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = lr
        objective.backward()
        self.opt_d.step()
        self.opt_g.step()
        out.update(lr_d=lr_d, lr_g=lr_g)
        return out

    def fit(self, train: ImageSet, val: ImageSet, run) -> None:
        cfg = self.config
        x = train.x.to(self.device)
        used = len(x) - len(x) % cfg.batch_size if cfg.drop_last and len(x) >= cfg.batch_size else len(x)
        epochs = epochs_for(used, cfg.batch_size, cfg.epochs, cfg.min_steps)
        keys = ("loss_d", "loss_g", "lr_d", "lr_g", "real_rec", "fake_rec", "gen_rec")
        with torch_threads(cfg.threads):
            for epoch in tqdm(range(run.resume(self), epochs), desc="adae", unit="epoch", leave=False):
                totals = dict.fromkeys(keys, 0.0)
                seen = 0
                for step, idx in enumerate(batches(len(x), cfg.batch_size, shuffle=True, drop_last=cfg.drop_last)):
                    values = self.train_step(x[idx], run, epoch, step)
                    for key in keys:
                        totals[key] += values[key] * len(idx)
                    seen += len(idx)
                metrics = {key: total / max(seen, 1) for key, total in totals.items()}
                metrics["val_score"] = float(self.score(val).mean()) if len(val) else float("nan")
                self._remember_if_best(epoch, metrics["val_score"])
                run.end_epoch(self, epoch, metrics)
            if cfg.select == "best_val" and self.best is not None:
                self.G.load_state_dict(self.best["G"])
                self.D.load_state_dict(self.best["D"])

    def _remember_if_best(self, epoch: int, val_score: float) -> None:
        if self.config.select != "best_val" or not math.isfinite(val_score):
            return
        if self.best is None or val_score < self.best["val_score"]:
            def copy(net):
                return {k: v.detach().clone() for k, v in net.state_dict().items()}

            self.best = {"epoch": epoch, "val_score": val_score, "G": copy(self.G), "D": copy(self.D)}

    def selected(self) -> dict:
        if self.best is None:
            return {}
        return {"best_epoch": self.best["epoch"], "best_val_score": self.best["val_score"]}

    @torch.no_grad()
    def _batched(self, x, fn) -> list:
        self.G.eval()
        self.D.eval()
        x = torch.as_tensor(x, dtype=torch.float32)
        out = []
        with torch_threads(self.config.threads):
            for idx in batches(len(x), self.config.score_batch_size, shuffle=False):
                out.append(fn(self._input(x[idx])))
        return out

    def score(self, images: ImageSet) -> np.ndarray:
        def a(x):
            return per_image_l2(x, self.D(self.G(x))).float().cpu()

        out = self._batched(images.x, a)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def reconstructions(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(G(x), D(G(x))) for images `x` (N, C, 32, 32) in [-1, 1], eval mode, as float32 arrays."""
        if isinstance(x, ImageSet):
            x = x.x

        def both(batch):
            g = self.G(batch)
            return g.contiguous().cpu(), self.D(g).contiguous().cpu()

        out = self._batched(x, both)
        if not out:
            empty = np.zeros((0, self.channels, 32, 32), dtype=np.float32)
            return empty, empty.copy()
        return torch.cat([g for g, _ in out]).numpy(), torch.cat([d for _, d in out]).numpy()

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.best = state.get("best")
