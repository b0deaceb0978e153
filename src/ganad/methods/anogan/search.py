"""AnoGAN's latent search, batched over images, and the one-image-at-a-time loop it must equal.

For a query x and a trained DCGAN (generator G, discriminator features f: D without
its last convolution), AnoGAN finds z by gradient descent on

    L(z) = (1 - lam) |x - G(z)|_1 + lam |f(x) - f(G(z))|_1        (weighting: feature)

(`weighting: residual` puts lam on the residual instead, as the ALAD repository's
AnoGAN does), with Adam, from a truncated-normal z, for `steps` steps; the score is
L at the final z.

Why batching is exact: with G and D in eval mode (BatchNorm on running statistics)
each image's forward pass depends on its own z only, so the gradient of the summed
loss sum_i L_i with respect to z_i is dL_i/dz_i, and Adam is elementwise: one Adam over
the (N, latent) tensor is N independent Adams, each with its own moments. N images then
share one pass of G and D per step, which turns N small matrix products into one large
one. `search_loop` is the plain per-image version; tests/test_anogan.py checks the two
agree in float64.

Why it is cheap per step: the search runs frozen copies of the networks (`search_nets`):
no weight gradients, so the backward pass computes input gradients only (about one
forward pass's work, not the two that weight gradients would add); eval-mode BatchNorm
folded into the convolutions; channels-last memory, which oneDNN's convolutions prefer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


@dataclass(frozen=True)
class SearchSettings:
    steps: int = 500
    lam: float = 0.1
    weighting: str = "feature"  # feature: lam on |f(x) - f(G(z))|; residual: lam on |x - G(z)|
    lr: tuple = ((0.4, 0.01), (0.6, 0.001), (1.0, 0.0005))  # (until, lr): fractions of `steps`
    betas: tuple[float, float] = (0.9, 0.999)

    def lr_at(self, step: int) -> float:
        """Adam's learning rate at step `step` (0-based) of `steps`."""
        for until, lr in self.lr:
            if step < until * self.steps:
                return lr
        return self.lr[-1][1]

    @property
    def weights(self) -> tuple[float, float]:
        """(weight of the residual term, weight of the feature term)."""
        return (1 - self.lam, self.lam) if self.weighting == "feature" else (self.lam, 1 - self.lam)


def fold_batchnorm(net: nn.Sequential) -> nn.Sequential:
    """A frozen eval-mode copy of `net` with every BatchNorm folded into the convolution before it.

    Eval-mode BatchNorm is a per-channel affine map, so conv -> BN is one convolution with
    scaled weights and a bias (torch.nn.utils.fusion): the same function up to float rounding,
    minus a BatchNorm pass and its backward at every search step."""
    layers, out, i = list(net), [], 0
    while i < len(layers):
        layer = copy.deepcopy(layers[i]).eval()
        if (
            isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))
            and i + 1 < len(layers)
            and isinstance(layers[i + 1], nn.BatchNorm2d)
        ):
            layer = fuse_conv_bn_eval(layer, layers[i + 1].eval(), transpose=isinstance(layer, nn.ConvTranspose2d))
            i += 1
        out.append(layer)
        i += 1
    return nn.Sequential(*out).eval().requires_grad_(False)


def search_nets(G: nn.Sequential, D: nn.Sequential, channels_last: bool = True) -> tuple[nn.Module, nn.Module]:
    """(G, f) as the search runs them: eval mode, BatchNorm folded, no weight gradients; f is D without its
    last convolution. The trained networks are left as they are."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return fold_batchnorm(G).to(memory_format=fmt), fold_batchnorm(D[:-1]).to(memory_format=fmt)


def anogan_loss(
    G: nn.Module, features: nn.Module, x: torch.Tensor, fx: torch.Tensor, z: torch.Tensor, settings: SearchSettings
) -> torch.Tensor:
    """L(z) per image: the weighted L1 residual and L1 feature distance (sums over pixels and features)."""
    w_res, w_feat = settings.weights
    gz = G(z)
    residual = (x - gz).abs().flatten(1).sum(1)
    feature = (fx - features(gz)).abs().flatten(1).sum(1)
    return w_res * residual + w_feat * feature


def initial_latents(n: int, latent: int, seed: int, truncation: float = 2.0, first: int = 0) -> torch.Tensor:
    """Truncated-normal starting latents (n, latent, 1, 1) for images first..first+n-1 of a scoring run,
    the same for an image whatever the batch it is searched in: image i's latent comes from its own
    stream, seeded by (seed, i)."""
    out = torch.empty(n, latent)
    for i in range(n):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + first + i)
        nn.init.trunc_normal_(out[i], 0.0, 1.0, -truncation, truncation, generator=gen)
    return out.view(n, latent, 1, 1)


def search(
    G: nn.Module, features: nn.Module, x: torch.Tensor, z0: torch.Tensor, settings: SearchSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batched search: (scores (N,), final z) for images x (N, C, H, W) from latents z0 (N, latent, 1, 1).

    G and features are evaluated once per step for the whole batch; pass them frozen and in eval mode
    (`search_nets`): with weight gradients on, every step would also compute those."""
    with torch.no_grad():
        fx = features(x)
    z = z0.detach().clone().to(x.device, x.dtype).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=settings.lr_at(0), betas=settings.betas)
    with torch.enable_grad():
        for step in range(settings.steps):
            for group in opt.param_groups:
                group["lr"] = settings.lr_at(step)
            opt.zero_grad(set_to_none=True)
            # the images' losses are independent, so the gradient of their sum is each one's own
            anogan_loss(G, features, x, fx, z, settings).sum().backward()
            opt.step()
    with torch.no_grad():
        return anogan_loss(G, features, x, fx, z, settings), z.detach()


def search_loop(
    G: nn.Module, features: nn.Module, x: torch.Tensor, z0: torch.Tensor, settings: SearchSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain way: one image at a time, its own z and Adam. Same result as `search`."""
    scores, zs = [], []
    for i in range(len(x)):
        s, z = search(G, features, x[i : i + 1], z0[i : i + 1], settings)
        scores.append(s)
        zs.append(z)
    return torch.cat(scores), torch.cat(zs)
