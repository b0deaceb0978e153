# Docs: docs/methods/anogan.md (what it computes, its settings, deviations from its paper, budgets).
"""AnoGAN (Schlegl et al., IPMI 2017): a DCGAN trained on normal images, scored by a latent search.

Training: a DCGAN generator G (latent `latent_dim`, 100 in the references, fed as a
100x1x1 input) and discriminator D (`nets.decoder` / `nets.encoder` with one output
logit), DCGAN init, trained with binary cross-entropy: D on real (target 1) and
generated (target 0) batches, then G with the non-saturating loss BCE(D(G(z)), 1).
Adam 2e-4, betas (0.5, 0.999), as DCGAN and the ALAD repository's AnoGAN.

Scoring: for every test image a latent search (`search.py` beside this module) on
(1 - lam) |x - G(z)|_1 + lam |f(x) - f(G(z))|_1, f = D's last convolutional block
(D without its final 4x4 convolution, 4 * width x 4 x 4 features), lam = 0.1 on the
feature term as the AnoGAN paper and EGBAD's code (`weighting: residual` is the ALAD
code's opposite convention), 500 Adam steps with EGBAD's learning-rate schedule, z
drawn afresh per image from a truncated N(0, I). The score is the loss at the final z.
G and D are in eval mode (BatchNorm on running statistics), which makes the images'
searches independent and lets `search_batch_size` of them share every pass; the search
runs frozen copies with BatchNorm folded into the convolutions (`search.search_nets`).

Logged per epoch: `loss_d`, `loss_g`, D's mean outputs on real and generated batches,
and `val_score`, the mean search score of the first `val_images` normal validation
images (monitoring; `select: best_val` would choose by it, the default keeps the last
epoch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ganad.data.images import ImageSet
from ganad.methods.anogan import Config
from ganad.methods.anogan.search import SearchSettings, initial_latents, search, search_nets
from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, batches, torch_threads


class AnoGAN(NeuralMethod):
    name = "anogan"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.G = nets.decoder(channels, config.latent_dim, config.width).to(device)
        self.D = nets.encoder(channels, 1, config.width).to(device)
        nets.dcgan_init(self.G)
        nets.dcgan_init(self.D)
        self.nets = {"G": self.G, "D": self.D}
        self.opt_g, self.opt_d = self.adam(self.G), self.adam(self.D)
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x).view(-1)

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One DCGAN update: D on a real and a generated batch, then G (non-saturating)."""
        n = len(x)
        ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
        # discriminator: real -> 1, G(z) -> 0
        fake = self.G(torch.randn(n, self.config.latent_dim, 1, 1, device=self.device))
        logit_real, logit_fake = self._logits(x), self._logits(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(logit_real, ones) + F.binary_cross_entropy_with_logits(
            logit_fake, zeros
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # generator: make D call G(z) real
        loss_g = F.binary_cross_entropy_with_logits(self._logits(fake), ones)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_real": torch.sigmoid(logit_real).mean().item(),
            "d_fake": torch.sigmoid(logit_fake).mean().item(),
        }

    def epoch_metrics(self, epoch: int, last: bool, train: ImageSet, val: ImageSet) -> dict[str, float]:
        if not len(val):
            return {"val_score": float("nan")}
        n = self.config.val_images
        return {"val_score": float(self.score(ImageSet(val.x[:n], val.labels[:n], val.index[:n])).mean())}

    # --- scoring ---------------------------------------------------------------------------------

    def search_settings(self) -> SearchSettings:
        cfg = self.config
        return SearchSettings(
            steps=cfg.search_steps,
            lam=cfg.lam,
            weighting=cfg.weighting,
            lr=tuple((float(u), float(lr)) for u, lr in cfg.search_lr),
            betas=(cfg.search_beta1, cfg.search_beta2),
        )

    def score(self, images: ImageSet) -> np.ndarray:
        """One search per image, `search_batch_size` images at a time; image i's starting latent depends on
        `search_seed` and i only, so the scores do not depend on the batch size."""
        cfg = self.config
        self._mode(False)
        G, features = search_nets(self.G, self.D, cfg.channels_last)
        settings, out = self.search_settings(), []
        with (
            torch_threads(cfg.threads),
            tqdm(
                total=len(images),
                desc="anogan search",
                unit="image",
                leave=False,
                disable=len(images) < cfg.search_batch_size,
            ) as bar,
        ):
            for idx in batches(len(images), cfg.search_batch_size, shuffle=False):
                x = (
                    images.x[idx]
                    .to(self.device)
                    .contiguous(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
                )
                z0 = initial_latents(len(idx), cfg.latent_dim, cfg.search_seed, cfg.init_truncation, int(idx[0]))
                out.append(search(G, features, x, z0.to(self.device), settings)[0].cpu())
                bar.update(len(idx))
        return torch.cat(out).double().numpy() if out else np.zeros(0, dtype=np.float64)
