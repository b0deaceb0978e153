# Docs: docs/methods/vae.md (what it computes, its settings, deviations from its paper, budgets).
"""VAE: the DCAE's convolutional backbone as a variational autoencoder, scored by the negative ELBO (ADGAN 4.2).

Encoder: `nets.encoder` with 2 * latent_dim output channels, split into the
posterior mean and log-variance of a diagonal Gaussian q(z|x); prior N(0, I).
Decoder: `nets.decoder`; its tanh output is the mean of a Gaussian
p(x|z) = N(x; decoder(z), sigma^2 I) over the D = C*32*32 pixel values in
[-1, 1]. `obs_std: optimal` (default) is the "calibrated decoder" of
Rybkin et al. (sigma-VAE, ICML 2021): one scalar sigma, set to its
maximum-likelihood value sigma^2 = mean squared error per pixel, on each
training batch (no gradient through it) and, for scoring, on the whole training
set after the last epoch (kept in the model; earlier epochs' validation scores
use the epoch's running value). No hand-set weight between
reconstruction and KL, and the score is a proper ELBO of a density on R^D with
a fixed sigma. A number fixes sigma instead (MSE / (2 sigma^2) plus a
constant). A gradient-learned sigma was tried and dropped: from sigma = 1 it
moved ~1 % in a short run, leaving the KL term dominant (AUROC ~0.5).
Negative ELBO per image, in nats:

    -ELBO(x) = E_q[ D/2 log(2 pi sigma^2) + ||x - decoder(z)||^2 / (2 sigma^2) ] + KL(q(z|x) || N(0, I))

Training minimises its batch mean with Adam (one reparametrised sample per
image). The anomaly score is -ELBO with the KL term exact and the expectation
averaged over `score_samples` posterior samples z = mu + std * eps_s, with the
same draws eps_1..eps_S (seeded by `score_seed`) for every image: an image's
score depends on that image only, and repeated scoring gives identical values.
BatchNorm in eval mode when scoring. ADGAN gives no training details; these are
ours (all params).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganad.data.images import ImageSet
from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, batches
from ganad.methods.vae import Config

MIN_STD = 1e-3  # floor for the calibrated sigma, against a zero-error batch
LOGVAR_RANGE = (-30.0, 20.0)


class VAENet(nn.Module):
    def __init__(self, channels: int, latent: int, width: int, obs_std: float | str):
        super().__init__()
        self.encoder = nets.encoder(channels, 2 * latent, width)
        self.decoder = nets.decoder(channels, latent, width)
        self.calibrated = obs_std == "optimal"
        # sigma used when scoring: fixed, or the calibrated value from the training set
        self.register_buffer("std", torch.tensor(1.0 if self.calibrated else float(obs_std)))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def sq_error(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (x - self.decoder(z)).pow(2).flatten(1).sum(1)

    @staticmethod
    def gaussian_nll(sq: torch.Tensor, dims: int, std: torch.Tensor) -> torch.Tensor:
        """-log N(x; mean, std^2 I) per image, in nats, from the squared error sum `sq`."""
        return 0.5 * dims * math.log(2 * math.pi) + dims * torch.log(std) + sq / (2 * std * std)

    def rec_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image with the stored sigma."""
        return self.gaussian_nll(self.sq_error(x, z), x[0].numel(), self.std)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per image, in nats."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


class VAE(NeuralMethod):
    name = "vae"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.net = VAENet(channels, config.latent_dim, config.width, config.obs_std).to(device)
        nets.dcgan_init(self.net)
        self.opt = self.adam(self.net)
        self.nets, self.optimizers = {"net": self.net}, {"net": self.opt}
        self._sq_sum = 0.0  # the epoch's squared reconstruction errors, for the running sigma

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        dims = x[0].numel()
        # forward: one reparametrised posterior draw per image
        mu, logvar = self.net.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        sq = self.net.sq_error(x, z)
        # loss: the negative ELBO, with the batch's maximum-likelihood sigma (no gradient through it)
        std = (sq.detach().mean() / dims).sqrt().clamp(min=MIN_STD) if self.net.calibrated else self.net.std
        rec, kl = self.net.gaussian_nll(sq, dims, std).mean(), self.net.kl(mu, logvar).mean()
        loss = rec + kl
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._sq_sum += float(sq.detach().sum())
        return {"train_loss": loss.item(), "train_rec": rec.item(), "train_kl": kl.item()}

    def epoch_metrics(self, epoch: int, last: bool, train: ImageSet, val: ImageSet) -> dict[str, float]:
        if self.net.calibrated:  # the epoch's running value; one exact pass after the last epoch
            dims = train.x[0].numel()
            std = self._calibrated_std(train) if last else math.sqrt(self._sq_sum / (len(train) * dims))
            self.net.std.fill_(max(std, MIN_STD))
        self._sq_sum = 0.0
        return {**super().epoch_metrics(epoch, last, train, val), "obs_std": float(self.net.std)}

    @torch.no_grad()
    def _calibrated_std(self, images: ImageSet) -> float:
        """Maximum-likelihood sigma of the ELBO on `images`: root mean squared error per pixel over q(z|x)
        (one posterior draw per image), with BatchNorm in eval mode as when scoring."""
        self.net.eval()
        total = 0.0
        for idx in batches(len(images), self.config.score_batch_size, shuffle=False):
            xb = images.x[idx].to(self.device)
            mu, logvar = self.net.posterior(xb)
            total += float(self.net.sq_error(xb, mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).sum())
        return math.sqrt(total / (len(images) * images.x[0].numel()))

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """-ELBO per image: exact KL + reconstruction NLL averaged over `score_samples` posterior draws."""
        cfg = self.config
        # Common random numbers: the same S standard-normal draws for every image, so that an
        # image's score depends on that image only (not on its position or its batch).
        gen = torch.Generator().manual_seed(cfg.score_seed)
        noise = torch.randn((cfg.score_samples, cfg.latent_dim, 1, 1), generator=gen).to(self.device)
        mu, logvar = self.net.posterior(x)
        std = torch.exp(0.5 * logvar)
        rec = torch.zeros(len(x), device=self.device)
        for eps in noise:
            rec += self.net.rec_nll(x, mu + std * eps)
        return rec / cfg.score_samples + self.net.kl(mu, logvar)
