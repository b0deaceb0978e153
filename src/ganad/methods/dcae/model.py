# Docs: docs/methods/dcae.md (what it computes, its settings, deviations from its paper, budgets).
"""DCAE: a DCGAN-shaped convolutional autoencoder scored by its reconstruction error.

ADGAN's Table 1 lists it without training details; we train with MSE and Adam
and score with the same per-image mean squared error (all params).
"""

from __future__ import annotations

import torch

from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, per_image_mse
from ganad.methods.dcae import Config


class DCAE(NeuralMethod):
    name = "dcae"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.net = nets.AutoEncoder(channels, config.latent_dim, config.width).to(device)
        nets.dcgan_init(self.net)
        self.opt = self.adam(self.net)
        self.nets, self.optimizers = {"net": self.net}, {"net": self.opt}

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        loss = per_image_mse(self.net(x), x).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"train_loss": loss.item()}

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        return per_image_mse(self.net(x), x)
