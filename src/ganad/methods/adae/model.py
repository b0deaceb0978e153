# Docs: docs/methods/adae.md (what it computes, its settings, deviations from its paper, budgets).
"""ADAE: adversarial dual autoencoders (Vu et al. 2019), scored by D's reconstruction of G(x).

Generator G and discriminator D are two DCGAN-shaped autoencoders of the same
shape (`nets.AutoEncoder`, DCGAN init). With |a - b| the per-image mean absolute
error averaged over the batch:

    L_D = |X - D(X)| - |G(X) - D(G(X))|      (G(X) detached: only D learns)
    L_G = |X - G(X)| + |G(X) - D(G(X))|      (only G learns; `gen_weight` multiplies the first term, 1 in the paper)

Balancing (`balance`), after GAIA (Sainburg et al.), which the paper cites, and
BEGAN, whose autoencoder discriminator ADAE builds on. With r = |X - D(X)| -
|G(X) - D(G(X))| (batch means, no gradient):

- `lr` (the paper's text): lr_D = lr * sigmoid(s * r), lr_G = lr * sigmoid(-s * r);
  the network that is losing speeds up.
- `gaia` (GAIA's code): the same learning rates, and D's fake term weighted by
  w = clip(sigmoid(s * (gate_sigma * |G(X) - D(G(X))| - |X - D(X)|)), 0, gate_max),
  so that D tries to fail on G(X) only once it reconstructs real images well
  (GAIA network.py 99-108; w is detached here, the gradient through it is not taken):
  L_D = |X - D(X)| - w |G(X) - D(G(X))|.
- `began` (BEGAN's k_t): fixed learning rates, L_D = |X - D(X)| - k |G(X) - D(G(X))|,
  k starting at 0 and after every step k <- clip(k + began_lambda * (began_gamma *
  |X - D(X)| - |G(X) - D(G(X))|), 0, 1).
- `none`: fixed learning rates, weight 1.

s is `slope` in the units `slope_units` names: `unit`, errors of images in [0, 1]
(GAIA's units, where its slope is 20), so on ganad's [-1, 1] images s = slope / 2;
or `image`, errors of ganad's [-1, 1] images as they are.
L_G is the paper's in every variant.

Warm-up (`warmup`): the first N updates train with `balance: none` whatever `balance` says; the
count runs over epochs (and is saved in checkpoints).

Why the default run balances with `began`: under `lr` and `gaia`, once D's fake term weighs enough, G's
adversarial gradient cancels its reconstruction gradient and G settles on one image for every input
(measured by benchmarks/adae_claim.py; docs/methods/adae.md#why-the-generator-did-not-learn). BEGAN's k starts
at 0 and grows only while D's error on G(X) is below half its error on X, so G keeps learning.

Score (`score`), BatchNorm in eval mode: `d_of_g`, the paper's A(x) = ||x - D(G(x))||_2 per image;
`g`, ||x - G(x)||_2; `d`, ||x - D(x)||_2; `amplification`, ||x - D(G(x))||_2 / ||x - G(x)||_2, how much
D enlarges G's error (the paper's argument: D fails on G(x) for anomalies).

Choices that are ours (the paper has no code):

- Both gradients of a step are taken at the same parameters and both optimisers
  then step (simultaneous updates, as GAIA's own training step does). This lets
  one forward pass of G(X) through D serve both losses: a gradient-reversal on
  G(X) in the adversarial term makes a single backward pass of
  `L_D + |X - G(X)|` give D exactly dL_D/dD and G exactly dL_G/dG (proved
  against the two separate losses in tests/test_adae.py). With a fake-term weight
  w, the gradient at G(X) is scaled by -1/w instead and D's term is multiplied by
  w: D gets -w dL_fake, G still +dL_fake. w is floored at 1e-3 (`WEIGHT_FLOOR`) so
  that -1/w stays finite: BEGAN's k = 0 leaves D a weight of 1e-3, not 0. `bn: separate` (default)
  puts the real batch and the generated batch through D in separate forward passes,
  as with two separate losses, so D's BatchNorm running statistics (used when
  scoring) average over both kinds of batch; `bn: joint` puts them through D as one
  concatenated batch, as BEGAN's code does, and takes each network's gradient of its
  own loss from that one pass (two backward passes).
- The last incomplete batch of an epoch is dropped (`drop_last`), so every
  BatchNorm batch has `batch_size` images; batches are reshuffled every epoch.
- `select: best_val` (the skeleton's, `ganad.methods.common.training`) keeps the weights of the epoch
  whose mean score on the normal validation slice was lowest (x -> G -> D reconstructs normal data best, which is
  what the paper's argument for the score needs); `last` (the paper) keeps the
  final epoch. Short runs oscillate as G and D trade places, so the last epoch
  can be a bad one. No test data and no anomaly labels are involved.
- `min_steps` raises the epoch count for small training sets (see
  `training.epochs_for`); 0 keeps the paper's epochs.
- The epoch loop, checkpoints, validation and scoring loop are the shared
  skeleton's (`ganad.methods.common.training.NeuralMethod`); this module holds the networks, the
  losses, one training step and the score.
- CPU speed settings (`channels_last`, `adam`, `compile`, `threads`) change how
  the numbers are computed, not what they mean; see benchmarks/bench_adae.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ganad.data.images import ImageSet
from ganad.methods.adae import Config
from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, per_image_l1, per_image_l2

WEIGHT_FLOOR = 1e-3  # smallest fake-term weight, so that the gradient scale -1/w stays finite


class GradScale:
    """The factor a `ScaledGrad` multiplies its gradient by; set before the backward pass."""

    def __init__(self, value: float = -1.0):
        self.value = value


class _ScaledGrad(torch.autograd.Function):
    """Identity forward; gradient times `scale.value` backward (-1: a gradient reversal)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale.value, None


def scaled_grad(x: torch.Tensor, scale: GradScale) -> torch.Tensor:
    return _ScaledGrad.apply(x, scale)


def reverse_grad(x: torch.Tensor) -> torch.Tensor:
    return scaled_grad(x, GradScale(-1.0))


def adae_forward(G: torch.nn.Module, D: torch.nn.Module, x: torch.Tensor, joint_bn: bool = False):
    """The three reconstruction terms (batch means) of one forward pass, and the gradient scale at G(X).

    Returns (real_rec, fake_rec, gen_rec, scale): real_rec = |X - D(X)|, fake_rec =
    |G(X) - D(G(X))|, gen_rec = |X - G(X)|. With separate BatchNorm passes G(X) enters D
    through `scaled_grad`: with `scale.value` = -1/w, the backward pass of
    `real_rec - w * fake_rec + gen_rec` leaves d(real_rec - w fake_rec)/dtheta_D in D's grads
    and d(gen_rec + fake_rec)/dtheta_G in G's. With `joint_bn` (one BatchNorm batch of real and
    generated images, as BEGAN) real_rec depends on G(X) through the batch statistics, so no
    single backward pass separates the two losses: `scale` is None and the step takes each
    network's gradient of its own loss from the same graph.
    """
    fake = G(x)
    if joint_bn:
        out = D(torch.cat([x, fake]))
        d_real, d_fake = out[: len(x)], out[len(x) :]
        scale, fake_in = None, fake
    else:
        scale = GradScale()
        fake_in = scaled_grad(fake, scale)
        d_real, d_fake = D(x), D(fake_in)
    return (per_image_l1(x, d_real).mean(), per_image_l1(fake_in, d_fake).mean(), per_image_l1(x, fake).mean(), scale)


def adae_losses(G: torch.nn.Module, D: torch.nn.Module, x: torch.Tensor):
    """The paper's losses with weight 1 on D's fake term: (real_rec, fake_rec, gen_rec, objective), where
    `objective.backward()` gives D dL_D and G dL_G (see `adae_forward`)."""
    real_rec, fake_rec, gen_rec, _ = adae_forward(G, D, x)
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


def gaia_gate(real_rec: float, fake_rec: float, slope: float, sigma: float = 0.5, ceiling: float = 0.9) -> float:
    """GAIA's weight on D's fake term: ~0 while D reconstructs real images worse than sigma x its error on
    fakes, rising to `ceiling` once it reconstructs them much better."""
    return min(max(sigmoid(slope * (sigma * fake_rec - real_rec)), 0.0), ceiling)


def began_k(k: float, real_rec: float, fake_rec: float, gamma: float, lam: float) -> float:
    """BEGAN's proportional control of D's fake-term weight: k + lam (gamma L_real - L_fake), clipped to [0, 1]."""
    return min(max(k + lam * (gamma * real_rec - fake_rec), 0.0), 1.0)


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
        self._forward = torch.compile(adae_forward) if config.compile else adae_forward
        self.k = 0.0  # BEGAN's fake-term weight (balance: began)
        self.updates = 0  # training steps so far, over epochs: the warm-up's clock

    @property
    def slope(self) -> float:
        """The sigmoid slope on ganad's errors ([-1, 1] images)."""
        return self.config.slope / 2 if self.config.slope_units == "unit" else self.config.slope

    @property
    def balance(self) -> str:
        """The balancing of this step: `none` during the warm-up, then `balance`."""
        return "none" if self.updates < self.config.warmup else self.config.balance

    def fake_weight(self, real: float, fake: float) -> float:
        """The weight of D's fake term for this step."""
        cfg = self.config
        if self.balance == "gaia":
            return gaia_gate(real, fake, self.slope, cfg.gate_sigma, cfg.gate_max)
        if self.balance == "began":
            return self.k
        return 1.0

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One simultaneous update of G and D on batch `x`; returns the step's losses and learning rates."""
        cfg = self.config
        # forward: the three reconstruction errors, one pass of G(X) through D
        real_rec, fake_rec, gen_rec, scale = self._forward(self.G, self.D, x, cfg.bn == "joint")
        real, fake, gen = real_rec.item(), fake_rec.item(), gen_rec.item()
        # balance: D's fake-term weight and each network's learning rate, from D's two errors
        w = self.fake_weight(real, fake)
        if w != 1.0:
            w = max(w, WEIGHT_FLOOR)
        lr_d, lr_g = balanced_lrs(cfg.lr, self.slope, real, fake, self.balance in ("lr", "gaia"))
        for opt, lr in ((self.opt_d, lr_d), (self.opt_g, lr_g)):
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = lr
        # update: both gradients at the same parameters, then both networks step
        if scale is None:  # joint BatchNorm pass: each network's gradient of its own loss
            d_grads = torch.autograd.grad(real_rec - w * fake_rec, list(self.D.parameters()), retain_graph=True)
            g_grads = torch.autograd.grad(cfg.gen_weight * gen_rec + fake_rec, list(self.G.parameters()))
            for net, grads in ((self.D, d_grads), (self.G, g_grads)):
                for p, g in zip(net.parameters(), grads):
                    p.grad = g
        else:  # one backward pass gives both
            if w != 1.0:
                scale.value = -1.0 / w
            (real_rec - w * fake_rec + cfg.gen_weight * gen_rec).backward()
        self.opt_d.step()
        self.opt_g.step()
        out = {
            "loss_d": real - w * fake,
            "loss_g": cfg.gen_weight * gen + fake,
            "real_rec": real,
            "fake_rec": fake,
            "gen_rec": gen,
            "lr_d": lr_d,
            "lr_g": lr_g,
        }
        if cfg.balance in ("gaia", "began"):
            out["fake_weight"] = w
        if self.balance == "began":
            self.k = began_k(self.k, real, fake, cfg.began_gamma, cfg.began_lambda)
        self.updates += 1
        return out

    def extra_state(self) -> dict:
        return {"k": self.k, "updates": self.updates}

    def load_extra_state(self, state: dict) -> None:
        self.k = float(state["k"])
        self.updates = int(state.get("updates", 0))  # a checkpoint written before the warm-up existed: 0

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """The configured score (`score`) per image; the paper's is ||x - D(G(x))||_2."""
        kind = self.config.score
        if kind == "d":
            return per_image_l2(x, self.D(x)).float()
        g = self.G(x)
        if kind == "g":
            return per_image_l2(x, g).float()
        d_of_g = per_image_l2(x, self.D(g))
        if kind == "amplification":
            return (d_of_g / per_image_l2(x, g).clamp_min(1e-12)).float()
        return d_of_g.float()

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
