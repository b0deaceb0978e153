# Docs: docs/methods/adgan.md (what it computes, its settings, deviations from its paper, budgets).
"""ADGAN (Deecke et al., ECML 2018): a WGAN's generator, scored by a latent search (Algorithm 1).

Training: a DCGAN generator (latent `latent_dim`, 256 in the paper, fed as a 256x1x1
input) and a DCGAN critic with a scalar output, trained on normal images with the
Wasserstein objective (paper Eq. 2). `objective: wgan` is the paper's setting, the WGAN
paper's defaults: RMSprop lr 5e-5 for both nets, critic weights clipped to +-0.01,
`n_critic` = 5 critic steps (each on a fresh real batch) per generator step.
`objective: wgan_gp` is the gradient-penalty variant (Gulrajani et al.): lambda 10,
Adam lr 1e-4 betas (0.5, 0.9), and a critic without BatchNorm (the penalty is per sample).
Deviation: the WGAN reference code's extra critic steps early in training (100 critic
steps for the first 25 generator steps) are not reproduced.

An epoch is one pass of the critic over the training images in full batches; the
generator steps after every n_critic-th critic step, counted across epochs, so small
training sets still move the generator, and `min_steps` raises the number of epochs
until the generator gets at least that many steps. Logged per epoch: `wasserstein`,
the critic's estimate E[D(x)] - E[D(G(z))]; `loss_critic` (its negation, plus the
penalty for wgan_gp); `loss_gen` = -E[D(G(z))]; `val_score`, the mean search score of
the first `val_images` normal validation images (monitoring only, nothing is chosen
by it).

Scoring (`score: reconstruction`, the paper's): for each image, `n_seed` latents from
the training prior are searched for k Adam steps on z and on a private copy of the
generator's parameters; the score is the mean final squared-L2 loss (see
`search.py` beside this module for the exact definition and the batched implementation). The
alternatives of the paper's Section 3.2 / 4.3: `critic`, the negative critic output
(the critic is high on real data, so its negation is high on anomalies), and `prior`,
the negative mean log N(z_k; 0, I) of the final latents of the same search.

Latents for scoring come from their own generator seeded by `search_seed`, so the
scores do not depend on the global RNG (nor on `pairs_per_batch`).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ganad.data.images import ImageSet
from ganad.methods.adgan import Config
from ganad.methods.adgan.search import BatchedSearch, SearchSettings, auto_pairs_per_batch
from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod


class ADGAN(NeuralMethod):
    name = "adgan"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        cfg = config
        self.generator = nets.decoder(channels, cfg.latent_dim, cfg.width).to(device)
        self.critic = nets.encoder(channels, 1, cfg.width, batchnorm=cfg.objective == "wgan").to(device)
        nets.dcgan_init(self.generator)
        nets.dcgan_init(self.critic)
        if cfg.objective == "wgan":
            self.opt_g = torch.optim.RMSprop(self.generator.parameters(), lr=cfg.lr)
            self.opt_d = torch.optim.RMSprop(self.critic.parameters(), lr=cfg.lr)
        else:
            betas = (cfg.gp_beta1, cfg.gp_beta2)
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.gp_lr, betas=betas)
            self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.gp_lr, betas=betas)
        self.nets = {"generator": self.generator, "critic": self.critic}
        self.optimizers = {"generator": self.opt_g, "critic": self.opt_d}
        self.critic_steps = 0  # over all epochs: the generator steps after every n_critic-th

    # --- training --------------------------------------------------------------------------------

    @classmethod
    def epochs(cls, cfg, n_train: int) -> int:
        """`epochs`, raised so that the generator takes at least `min_steps` steps (one per n_critic
        critic steps; an epoch is one pass of the critic over the data, in full batches)."""
        critic_steps = max(1, n_train // min(cfg.batch_size, max(n_train, 1)))
        return max(cfg.epochs, -(-cfg.min_steps * cfg.n_critic // critic_steps))

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, 1, 1, device=self.device)

    def _critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).view(-1)

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        eps = torch.rand(len(real), 1, 1, 1, device=self.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._critic(mix).sum(), mix, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def train_step(self, real: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One critic step on a real batch; every n_critic-th critic step (counted across epochs), a
        generator step."""
        cfg = self.config
        # critic: the Wasserstein estimate E[D(x)] - E[D(G(z))], maximised (plus the penalty for wgan_gp)
        with torch.no_grad():
            fake = self.generator(self._noise(len(real)))
        d_real, d_fake = self._critic(real).mean(), self._critic(fake).mean()
        loss_c = d_fake - d_real
        if cfg.objective == "wgan_gp":
            loss_c = loss_c + cfg.gp_lambda * self._gradient_penalty(real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        loss_c.backward()
        self.opt_d.step()
        if cfg.objective == "wgan":
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-cfg.clip, cfg.clip)
        losses = {"wasserstein": (d_real - d_fake).item(), "loss_critic": loss_c.item()}
        # generator: -E[D(G(z))], minimised
        self.critic_steps += 1
        if self.critic_steps % cfg.n_critic == 0:
            loss_g = -self._critic(self.generator(self._noise(len(real)))).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            losses["loss_gen"] = loss_g.item()
        return losses

    def epoch_metrics(self, epoch: int, last: bool, train: ImageSet, val: ImageSet) -> dict[str, float]:
        if not len(val):
            return {}
        # the search score of a few normal validation images (lower = the generator covers them)
        n = self.config.val_images
        return {"val_score": float(self._search(ImageSet(val.x[:n], val.labels[:n], val.index[:n])).scores().mean())}

    def extra_state(self) -> dict:
        return {"critic_steps": self.critic_steps}

    def load_extra_state(self, state: dict) -> None:
        self.critic_steps = int(state["critic_steps"])

    # --- scoring ---------------------------------------------------------------------------------

    def search_settings(self, n_pairs: int | None = None) -> SearchSettings:
        cfg = self.config
        pairs = cfg.pairs_per_batch
        if pairs == "auto":
            pairs = auto_pairs_per_batch(self.generator, self.device)
        workers = cfg.search_workers
        if workers == "auto":
            workers = torch.get_num_threads() if self.device.type == "cpu" else 1
        if n_pairs is not None:
            pairs = max(1, min(pairs, n_pairs))
            workers = max(1, min(workers, -(-n_pairs // pairs)))
        return SearchSettings(
            n_seed=cfg.n_seed,
            k=cfg.k,
            lr_z=cfg.lr_z,
            lr_theta=cfg.lr_theta,
            betas=(cfg.search_beta1, cfg.search_beta2),
            pairs_per_batch=pairs,
            update_params=cfg.update_params,
            workers=workers,
        )

    def _search(self, images: ImageSet, progress: bool = False):
        self._mode(False)
        settings = self.search_settings(len(images) * self.config.n_seed)
        rng = torch.Generator().manual_seed(self.config.search_seed)
        bar = tqdm(
            total=len(images) * settings.n_seed, desc="adgan search", unit="pair", leave=False, disable=not progress
        )
        with bar:
            return BatchedSearch(self.generator, settings).run(images.x, generator=rng, progress=bar.update)

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """`score: critic`: the negative critic output (the critic is high on real data)."""
        return -self._critic(x).double()

    def score(self, images: ImageSet) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        if self.config.score == "critic":
            return super().score(images)
        result = self._search(images, progress=True)
        scores = result.prior_scores() if self.config.score == "prior" else result.scores()
        return scores.double().numpy()
