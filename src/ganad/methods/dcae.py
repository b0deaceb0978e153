"""DCAE: a DCGAN-shaped convolutional autoencoder scored by its reconstruction error.

ADGAN's Table 1 lists it without training details; we train with MSE and Adam
and score with the same per-image mean squared error (all params).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .. import nets
from ..images import ImageSet
from ..training import batches, epochs_for
from .base import Method, non_negative_int, positive, positive_int


@dataclass
class DCAEConfig:
    latent_dim: int = positive_int(32)
    width: int = positive_int(64)
    epochs: int = positive_int(20)
    min_steps: int = non_negative_int(0)  # see training.epochs_for
    batch_size: int = positive_int(64)
    lr: float = positive(2e-4)
    beta1: float = 0.5
    score_batch_size: int = positive_int(256)


def per_image_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).flatten(1).mean(1)


class DCAE(Method):
    name = "dcae"
    Config = DCAEConfig

    def __init__(self, config: DCAEConfig, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.net = nets.AutoEncoder(channels, config.latent_dim, config.width).to(device)
        nets.dcgan_init(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=(config.beta1, 0.999))

    def fit(self, train: ImageSet, val: ImageSet, run) -> None:
        cfg = self.config
        x = train.x.to(self.device)
        epochs = epochs_for(len(x), cfg.batch_size, cfg.epochs, cfg.min_steps)
        for epoch in tqdm(range(run.resume(self), epochs), desc="dcae", unit="epoch", leave=False):
            self.net.train()
            total = 0.0
            for step, idx in enumerate(batches(len(x), cfg.batch_size, shuffle=True)):
                loss = per_image_mse(self.net(x[idx]), x[idx]).mean()
                run.check_finite({"loss": loss.item()}, epoch, step)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                total += loss.item() * len(idx)
            run.end_epoch(self, epoch, {"train_loss": total / len(x), "val_loss": float(self.score(val).mean())})

    @torch.no_grad()
    def score(self, images: ImageSet) -> np.ndarray:
        self.net.eval()
        out = []
        for idx in batches(len(images), self.config.score_batch_size, shuffle=False):
            x = images.x[idx].to(self.device)
            out.append(per_image_mse(self.net(x), x).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
