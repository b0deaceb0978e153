"""DCGAN-shaped building blocks for 32x32 images.

Encoder: three stride-2 convolutions (32 -> 16 -> 8 -> 4) and a 4x4 convolution
to `latent` channels at 1x1. Decoder: the mirror image with transposed
convolutions and a tanh output. No pooling and no fully connected layer.
`width` is the channel count of the first layer (DCGAN and the papers: 64).
"""

from __future__ import annotations

import torch
from torch import nn


def encoder(channels: int, latent: int, width: int = 64, batchnorm: bool = True) -> nn.Sequential:
    def norm(n):
        return nn.BatchNorm2d(n) if batchnorm else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
        norm(2 * width),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False),
        norm(4 * width),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(4 * width, latent, 4, 1, 0, bias=False),
    )


def decoder(channels: int, latent: int, width: int = 64) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(latent, 4 * width, 4, 1, 0, bias=False),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(True),
        nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(True),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(True),
        nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


class AutoEncoder(nn.Module):
    """x -> code (latent, 1, 1) -> reconstruction in [-1, 1]."""

    def __init__(self, channels: int, latent: int, width: int = 64):
        super().__init__()
        self.encoder = encoder(channels, latent, width)
        self.decoder = decoder(channels, latent, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
