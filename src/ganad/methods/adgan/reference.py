"""ADGAN's search (Algorithm 1) written plainly: the readable reference beside the fast one in `search.py`.

One image and one latent seed at a time: a fresh deep copy of the generator, torch.optim.Adam on z and on
the copy's parameters, BatchNorm in eval mode. `search.BatchedSearch` computes the same losses for many
(image, seed) pairs at once, with per-pair weight state and fused Adam kernels; the tests hold it to this
function (to 1e-10 in float64), and benchmarks/bench_adgan_search.py times one against the other.
"""

from __future__ import annotations

import copy

import torch


def reference_search(gen, x, z0, k, lr_z=0.25, lr_theta=5e-5, betas=(0.5, 0.999), update_params=True):
    """Algorithm 1 written plainly: one image and one seed at a time, a fresh deep copy of the generator,
    torch.optim.Adam on z and on the copy's parameters, BatchNorm in eval mode. Returns the final
    losses ||g_theta_k(z_k) - x||^2 (one more forward pass after the k-th update) and the final z."""
    losses = torch.empty(z0.shape[:2], dtype=x.dtype)
    finals = torch.empty(z0.shape, dtype=x.dtype)
    for i in range(len(x)):
        for j in range(z0.shape[1]):
            g = copy.deepcopy(gen).eval()
            z = z0[i, j].clone().view(1, -1, 1, 1).requires_grad_(True)
            opt_z = torch.optim.Adam([z], lr=lr_z, betas=betas)
            opt_theta = torch.optim.Adam(g.parameters(), lr=lr_theta, betas=betas) if update_params else None
            for _ in range(k):
                loss = (g(z) - x[i : i + 1]).pow(2).sum()
                opt_z.zero_grad()
                g.zero_grad()
                loss.backward()
                opt_z.step()
                if opt_theta is not None:
                    opt_theta.step()
            with torch.no_grad():
                losses[i, j] = (g(z) - x[i : i + 1]).pow(2).sum()
            finals[i, j] = z.detach().view(-1)
    return losses, finals
