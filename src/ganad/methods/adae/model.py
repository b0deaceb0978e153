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
- `select: best_val` (the skeleton's, `ganad.neural`) keeps the weights of the epoch
  whose mean score on the normal validation slice was lowest (x -> G -> D reconstructs normal data best, which is
  what the paper's argument for the score needs); `last` (the paper) keeps the
  final epoch. Short runs oscillate as G and D trade places, so the last epoch
  can be a bad one. No test data and no anomaly labels are involved.
- `min_steps` raises the epoch count for small training sets (see
  `training.epochs_for`); 0 keeps the paper's epochs.
- The epoch loop, checkpoints, validation and scoring loop are the shared
  skeleton's (`ganad.neural.NeuralMethod`); this module holds the networks, the
  losses, one training step and the score.
- CPU speed settings (`channels_last`, `adam`, `compile`, `threads`) change how
  the numbers are computed, not what they mean; see benchmarks/bench_adae.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ... import nets
from ...images import ImageSet
from ...neural import NeuralMethod, per_image_l1, per_image_l2
from . import Config


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


class ADAE(NeuralMethod):
    name = "adae"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.G = nets.AutoEncoder(channels, config.latent_dim, config.width)
        self.D = nets.AutoEncoder(channels, config.latent_dim, config.width)
        nets.dcgan_init(self.G)
        nets.dcgan_init(self.D)
        self.G.to(device=device, memory_format=self.memory_format)
        self.D.to(device=device, memory_format=self.memory_format)
        self.nets = {"G": self.G, "D": self.D}
        self.opt_g, self.opt_d = self.adam(self.G), self.adam(self.D)
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self._losses = torch.compile(adae_losses) if config.compile else adae_losses

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One simultaneous update of G and D on batch `x`; returns the step's losses and learning rates."""
        cfg = self.config
        # forward: the three reconstruction errors, one pass of G(X) through D
        real_rec, fake_rec, gen_rec, objective = self._losses(self.G, self.D, x)
        real, fake, gen = real_rec.item(), fake_rec.item(), gen_rec.item()
        # balance: each network's learning rate from how far D's two errors are apart
        lr_d, lr_g = balanced_lrs(cfg.lr, cfg.slope, real, fake, cfg.balance)
        for opt, lr in ((self.opt_d, lr_d), (self.opt_g, lr_g)):
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = lr
        # update: one backward pass gives both gradients, then both networks step
        objective.backward()
        self.opt_d.step()
        self.opt_g.step()
        return {"loss_d": real - fake, "loss_g": gen + fake, "real_rec": real, "fake_rec": fake, "gen_rec": gen,
                "lr_d": lr_d, "lr_g": lr_g}

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A(x) = ||x - D(G(x))||_2 per image."""
        return per_image_l2(x, self.D(self.G(x))).float()

    def reconstructions(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(G(x), D(G(x))) for images `x` (N, C, 32, 32) in [-1, 1], eval mode, as float32 arrays."""
        if isinstance(x, ImageSet):
            x = x.x

        def both(batch):
            g = self.G(batch)
            return g.contiguous().cpu(), self.D(g).contiguous().cpu()

        out = self.map_batches(torch.as_tensor(x, dtype=torch.float32), both)
        if not out:
            empty = np.zeros((0, self.channels, 32, 32), dtype=np.float32)
            return empty, empty.copy()
        return torch.cat([g for g, _ in out]).numpy(), torch.cat([d for _, d in out]).numpy()
