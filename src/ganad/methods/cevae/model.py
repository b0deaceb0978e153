# Docs: docs/methods/cevae.md (what it computes, its settings, deviations from its paper, budgets).
"""ceVAE: a context-encoding VAE (Zimmerer et al., arXiv:1812.05941), as the MOOD 2020 code builds it.

One encoder and one decoder serve two branches:

- the VAE branch encodes x into q(z|x) = N(mu, diag(exp(logvar))), decodes one reparametrised draw z
  and is trained on beta * KL(q(z|x) || N(0, I)) + theta * L1(x_hat, x);
- the context-encoder (CE) branch erases random squares of x (`erase_squares`), encodes the corrupted
  image and decodes its posterior mean (no draw: the CE "directly uses the mean", in the paper), and
  is trained on L1(x_hat_ce, x) against the clean x (Zimmerer; Baur et al.'s re-implementation compares
  with the corrupted input instead, which we do not follow).

Loss (MOOD, example_algos/algorithms/ce_vae.py), batch mean of per-image terms:

    loss = (1 - ce_factor) * (beta * KL + theta * L1(x_hat, x)) + ce_factor * L1(x_hat_ce, x)

with L1 the mean absolute error over C, H, W and KL the mean over the latent dimensions (MOOD's
`rec_loss_fn` and `kl_loss_fn`, not sums); defaults ce_factor 0.5, beta 0.01, theta 1.
`ce_factor: 0` is the plain VAE of the comparison and `1` the context encoder alone; a branch whose
weight is 0 is not run, as in MOOD.

Image score (MOOD's `score_sample`; the ADAE brain comparison's slice score), with the VAE run
deterministically (z = mu) on the clean image and the loss's VAE weighting:

    combined = beta * KL(mu, logvar) + theta * L1(decoder(mu), x)

`score: rec` and `score: kl` give one term alone, the two other slice scores of the authors' 2019
code. No sampling: an image's score depends on that image only.

Where we differ from the MOOD code, and why:

- MOOD's CE call `self.model(inpt_noisy)` keeps its default `sample=True`, so it decodes a posterior
  draw; we decode the mean, as the paper describes the CE branch.
- The square noise follows MOOD's arguments (0-3 squares, side 0..size/2, values in the batch's range,
  one side per image) but not two quirks of its `get_square_mask`: its loop keeps only the last square
  (each square is drawn on a fresh zero image), and `int(random.uniform(a, b))` never reaches the
  upper ends (3 squares, side size/2). MOOD also marks erased pixels by `mask != 0`, so a square
  filled with exactly 0 stays clean; we keep a boolean mask.
- The encoder gives mu and the log-variance (the project's VAE convention) where MOOD's gives log std;
  the same Gaussian family.
- The network is the DCGAN backbone of `vae` and `dcae` (`ganad.methods.common.nets`, with BatchNorm), so that AE,
  VAE and ceVAE differ in their objective only; the DKFZ networks have no normalisation. BatchNorm's
  running statistics, which scoring uses, come from the clean batches of the VAE branch: the CE pass
  normalises with its own batch statistics but does not update them (with ce_factor 1, the CE
  pass is the only one, and updates them).

The noise and the posterior draws use torch's global RNG (seeded by the pipeline, saved in
checkpoints); the squares are drawn on the CPU, so a run repeats on any device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ganad.methods.cevae import Config
from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, per_image_l1

MAX_SQUARES = 3  # MOOD's n_squares=(0, 3)
LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite


# --- the context-encoding corruption ---------------------------------------------------------------


@dataclass
class Squares:
    """The squares erased in each image of a batch: `count` (B,) of the MAX_SQUARES slots are used,
    all of side `side` (B,); slot k has its top-left corner at (`top`, `left`)[:, k] and is filled with
    `fill`[:, k]."""

    count: torch.Tensor
    side: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    fill: torch.Tensor


def draw_squares(x: torch.Tensor) -> Squares:
    """MOOD's `ce_noise` draws for batch `x` (B, C, H, W), from torch's global CPU RNG: per image
    U{0..3} squares of one side U{0..min(H, W) // 2}, each inside the image at a uniform position and
    filled with a value U[min(x), max(x)) of the whole batch."""
    n, (height, width) = len(x), x.shape[-2:]
    count = torch.randint(0, MAX_SQUARES + 1, (n,))
    side = torch.randint(0, min(height, width) // 2 + 1, (n,))

    def corner(extent: int) -> torch.Tensor:  # uniform on 0..extent - side, so the square fits
        return (torch.rand(n, MAX_SQUARES) * (extent - side + 1)[:, None]).long()

    top, left = corner(height), corner(width)
    low, high = x.min().item(), x.max().item()
    fill = low + (high - low) * torch.rand(n, MAX_SQUARES)
    return Squares(count, side, top, left, fill)


def square_mask(squares: Squares, k: int, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) booleans: the pixels of square slot `k` in each image (none where k >= count)."""
    rows, cols = torch.arange(height)[None, :], torch.arange(width)[None, :]
    top, left, side = squares.top[:, k, None], squares.left[:, k, None], squares.side[:, None]
    in_rows = (rows >= top) & (rows < top + side)
    in_cols = (cols >= left) & (cols < left + side)
    used = (k < squares.count)[:, None, None]
    return (used & in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def erase_squares(x: torch.Tensor, squares: Squares) -> torch.Tensor:
    """`x` with `squares` painted over it, across all channels; a later square covers an earlier one."""
    out = x
    for k in range(MAX_SQUARES):
        mask = square_mask(squares, k, *x.shape[-2:]).to(x.device)
        fill = squares.fill[:, k].to(x)[:, None, None, None]
        out = torch.where(mask, fill, out)
    return out


# --- networks and losses ---------------------------------------------------------------------------


class CEVAENet(nn.Module):
    """The encoder (x -> mu, logvar) and decoder (z -> x_hat in [-1, 1]) both branches share."""

    def __init__(self, channels: int, latent: int, width: int):
        super().__init__()
        self.encoder = nets.encoder(channels, 2 * latent, width)
        self.decoder = nets.decoder(channels, latent, width)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


def kl_per_image(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of each image, the mean over latent dimensions (MOOD's scale)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).mean(1)


@contextlib.contextmanager
def running_statistics_kept(net: nn.Module):
    """Inside the block, train-mode BatchNorm layers normalise with the batch's own statistics and leave
    their running averages (what eval-mode scoring uses) untouched."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    tracked = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, before in zip(norms, tracked):
            m.track_running_stats = before


# --- the method ------------------------------------------------------------------------------------


class CEVAE(NeuralMethod):
    name = "cevae"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.net = CEVAENet(channels, config.latent_dim, config.width).to(device)
        nets.dcgan_init(self.net)
        self.opt = self.adam(self.net)
        self.nets, self.optimizers = {"net": self.net}, {"net": self.opt}

    def vae_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch means of L1(x_hat, x) and KL, x_hat decoded from one reparametrised posterior draw."""
        mu, logvar = self.net.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return per_image_l1(self.net.decoder(z), x).mean(), kl_per_image(mu, logvar).mean()

    def ce_branch(self, x: torch.Tensor, corrupted: torch.Tensor) -> torch.Tensor:
        """Batch mean of L1(x_hat_ce, x): the corrupted images' posterior means decoded, against the clean x."""
        mu, _ = self.net.posterior(corrupted)
        return per_image_l1(self.net.decoder(mu), x).mean()

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        cfg = self.config
        losses: dict[str, torch.Tensor] = {}
        loss = x.new_zeros(())
        if cfg.ce_factor < 1:
            losses["train_rec"], losses["train_kl"] = self.vae_branch(x)
            vae_loss = cfg.beta * losses["train_kl"] + cfg.theta * losses["train_rec"]
            loss = loss + (1 - cfg.ce_factor) * vae_loss
        if cfg.ce_factor > 0:
            corrupted = erase_squares(x, draw_squares(x))
            # the VAE branch, when it runs, has set BatchNorm's running statistics from the clean images
            keep = running_statistics_kept(self.net) if cfg.ce_factor < 1 else contextlib.nullcontext()
            with keep:
                losses["train_rec_ce"] = self.ce_branch(x, corrupted)
            loss = loss + cfg.ce_factor * losses["train_rec_ce"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"train_loss": loss.item(), **{key: value.item() for key, value in losses.items()}}

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """beta * KL + theta * L1 of each clean image with z = mu (`score: combined`), or one term alone."""
        cfg = self.config
        mu, logvar = self.net.posterior(x)
        kl = kl_per_image(mu, logvar)
        if cfg.score == "kl":
            return kl
        rec = per_image_l1(self.net.decoder(mu), x)
        return rec if cfg.score == "rec" else cfg.beta * kl + cfg.theta * rec
