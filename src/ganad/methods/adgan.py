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
`ganad.search` for the exact definition and the batched implementation). The
alternatives of the paper's Section 3.2 / 4.3: `critic`, the negative critic output
(the critic is high on real data, so its negation is high on anomalies), and `prior`,
the negative mean log N(z_k; 0, I) of the final latents of the same search.

Latents for scoring come from their own generator seeded by `search_seed`, so the
scores do not depend on the global RNG (nor on `pairs_per_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .. import nets
from ..images import ImageSet
from ..search import BatchedSearch, SearchSettings, auto_pairs_per_batch
from ..training import batches
from .base import Method, flag, fraction, is_int, non_negative_int, one_of, positive, positive_int, rule


def auto_or_positive_int(default):
    return rule(default, lambda v: v == "auto" or (is_int(v) and v > 0), "'auto' or a positive integer")


@dataclass
class ADGANConfig:
    # GAN (paper: DCGAN, latent 256, WGAN)
    latent_dim: int = positive_int(256)
    width: int = positive_int(64)
    objective: str = one_of("wgan", ("wgan", "wgan_gp"))
    epochs: int = positive_int(25)
    min_steps: int = non_negative_int(0)  # generator steps at least: small training sets get more epochs
    batch_size: int = positive_int(64)
    n_critic: int = positive_int(5)
    lr: float = positive(5e-5)  # wgan: RMSprop, both nets
    clip: float = positive(0.01)  # wgan: critic weights clipped to [-clip, clip]
    gp_lr: float = positive(1e-4)  # wgan_gp: Adam, both nets
    gp_beta1: float = fraction(0.5)
    gp_beta2: float = fraction(0.9)
    gp_lambda: float = positive(10.0)
    # latent search (Algorithm 1; paper: 64 seeds, 5 steps, Adam 0.25 on z and 5e-5 on theta)
    n_seed: int = positive_int(64)
    k: int = positive_int(5)
    lr_z: float = positive(0.25)
    lr_theta: float = positive(5e-5)
    search_beta1: float = fraction(0.5)
    search_beta2: float = fraction(0.999)
    update_params: bool = flag(True)
    pairs_per_batch: int | str = auto_or_positive_int("auto")  # auto: a few on a CPU, many on a GPU
    search_workers: int | str = auto_or_positive_int("auto")  # auto: torch's thread count on a CPU, 1 on a GPU
    search_seed: int = non_negative_int(0)
    score: str = one_of("reconstruction", ("reconstruction", "critic", "prior"))
    val_images: int = positive_int(16)  # normal validation images searched after every epoch (logged only)
    score_batch_size: int = positive_int(256)  # critic scoring


class ADGAN(Method):
    name = "adgan"
    Config = ADGANConfig

    def __init__(self, config: ADGANConfig, channels: int, device: torch.device):
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
        self.critic_steps = 0  # over all epochs: the generator steps after every n_critic-th

    # --- training --------------------------------------------------------------------------------

    def epochs(self, n_train: int) -> int:
        """`epochs`, raised so that the generator takes at least `min_steps` steps (one per n_critic
        critic steps; an epoch is one pass of the critic over the data, in full batches)."""
        cfg = self.config
        critic_steps = max(1, n_train // min(cfg.batch_size, max(n_train, 1)))
        return max(cfg.epochs, -(-cfg.min_steps * cfg.n_critic // critic_steps))

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, 1, 1, device=self.device)

    def _critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).view(-1)

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        eps = torch.rand(len(real), 1, 1, 1, device=self.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self._critic(mix).sum(), mix, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def fit(self, train: ImageSet, val: ImageSet, run) -> None:
        cfg = self.config
        x = train.x.to(self.device)
        batch = min(cfg.batch_size, len(x))
        for epoch in tqdm(range(run.resume(self), self.epochs(len(x))), desc="adgan", unit="epoch", leave=False):
            self.generator.train()
            self.critic.train()
            sums = {"wasserstein": 0.0, "loss_critic": 0.0, "loss_gen": 0.0}
            n_critic_steps = n_gen_steps = 0
            for step, idx in enumerate(batches(len(x), batch, shuffle=True, drop_last=True)):
                real = x[idx]
                with torch.no_grad():
                    fake = self.generator(self._noise(len(idx)))
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
                losses = {"loss_critic": loss_c.item()}
                sums["wasserstein"] += (d_real - d_fake).item()
                sums["loss_critic"] += losses["loss_critic"]
                n_critic_steps += 1
                self.critic_steps += 1
                if self.critic_steps % cfg.n_critic == 0:
                    loss_g = -self._critic(self.generator(self._noise(batch))).mean()
                    self.opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    self.opt_g.step()
                    losses["loss_gen"] = loss_g.item()
                    sums["loss_gen"] += losses["loss_gen"]
                    n_gen_steps += 1
                run.check_finite(losses, epoch, step)
            metrics = {"wasserstein": sums["wasserstein"] / max(n_critic_steps, 1),
                       "loss_critic": sums["loss_critic"] / max(n_critic_steps, 1)}
            if n_gen_steps:
                metrics["loss_gen"] = sums["loss_gen"] / n_gen_steps
            if len(val):
                # the search score of a few normal validation images (lower = the generator covers them)
                subset = ImageSet(val.x[:cfg.val_images], val.labels[:cfg.val_images], val.index[:cfg.val_images])
                metrics["val_score"] = float(self._search(subset).scores().mean())
            run.end_epoch(self, epoch, metrics)

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
        return SearchSettings(n_seed=cfg.n_seed, k=cfg.k, lr_z=cfg.lr_z, lr_theta=cfg.lr_theta,
                              betas=(cfg.search_beta1, cfg.search_beta2), pairs_per_batch=pairs,
                              update_params=cfg.update_params, workers=workers)

    def _search(self, images: ImageSet, progress: bool = False):
        self.generator.eval()
        settings = self.search_settings(len(images) * self.config.n_seed)
        rng = torch.Generator().manual_seed(self.config.search_seed)
        bar = tqdm(total=len(images) * settings.n_seed, desc="adgan search", unit="pair", leave=False,
                   disable=not progress)
        with bar:
            return BatchedSearch(self.generator, settings).run(images.x, generator=rng, progress=bar.update)

    @torch.no_grad()
    def score(self, images: ImageSet) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        if self.config.score == "critic":
            self.critic.eval()
            out = [-self._critic(images.x[idx].to(self.device)).double().cpu()
                   for idx in batches(len(images), self.config.score_batch_size, shuffle=False)]
            return torch.cat(out).numpy()
        result = self._search(images, progress=True)
        scores = result.prior_scores() if self.config.score == "prior" else result.scores()
        return scores.double().numpy()

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "critic_steps": self.critic_steps}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.critic_steps = int(state.get("critic_steps", 0))
