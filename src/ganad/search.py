"""ADGAN's latent search (Deecke et al. 2018, Algorithm 1), batched over (image, seed) pairs.

For a test image x, `n_seed` latent vectors z_j,0 are drawn from the training prior
N(0, I). Every pair (x, j) owns a copy theta_j of the generator's parameters. For
t = 1..k, with l(z, theta) = ||g_theta(z) - x||^2 (squared L2, summed over pixels):

    z_j,t     = Adam_z(z_j,t-1,     grad_z     l(z_j,t-1, theta_j,t-1))   lr 0.25
    theta_j,t = Adam_th(theta_j,t-1, grad_theta l(z_j,t-1, theta_j,t-1))  lr 5e-5

both with betas (0.5, 0.999), eps 1e-8, one optimiser state per pair (as a fresh
`torch.optim.Adam` per pair would keep it). Both updates use the gradient of the
same loss evaluation. The final loss of a pair is l(z_j,k, theta_j,k): one more
forward pass after the k-th update, exactly the quantity Algorithm 1 returns. The
score of x is the mean of the final losses over its seeds. theta starts from the
trained values for every pair, so nothing carries over between images, and the
trained generator is never written to. BatchNorm uses its running statistics
(eval mode); its affine scale and shift are parameters and are searched too.

Why the hand-written passes: every pair owns 1.7 M weights plus their gradient and
two Adam moments (~27 MB in float32 at width 64), so on a CPU the search is bound
by memory traffic, not by arithmetic. Stacking all 64 seeds into one grouped call
(vmap, grouped convolutions) makes that traffic stream from DRAM and was measured
slower than the plain loop. Here a few pairs run at once (`pairs_per_batch`); the
forward and backward passes of the DCGAN generator are written out with batched
matrix products (ConvTranspose2d = matmul + col2im, its adjoint = im2col + matmul);
gradients land in preallocated buffers, and each layer takes its fused in-place
Adam step (`torch._fused_adam_`) right after its gradient is computed, while the
weights, gradient and moments are still in cache. The first step runs with the
shared trained weights (one matrix product for all pairs of the batch); with
`update_params=False` every step does. On a GPU the same code runs with many more
pairs per batch.

Only the layers `nets.decoder` builds are supported (ConvTranspose2d without bias,
BatchNorm2d, ReLU, Tanh, in an nn.Sequential); anything else is refused by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SearchSettings:
    """Algorithm 1's parameters; the defaults are the paper's (Section 4.2 and footnote 9)."""

    n_seed: int = 64
    k: int = 5
    lr_z: float = 0.25
    lr_theta: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    pairs_per_batch: int = 4
    update_params: bool = True

    def __post_init__(self):
        for name in ("n_seed", "pairs_per_batch"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"search {name} = {getattr(self, name)!r} must be a positive integer")
        if not (isinstance(self.k, int) and self.k >= 0):
            raise ValueError(f"search k = {self.k!r} must be a non-negative integer")
        if not (self.lr_z >= 0 and self.lr_theta >= 0 and self.eps > 0):
            raise ValueError("search learning rates must be >= 0 and eps > 0")
        if not (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"search betas = {self.betas!r} must be two numbers in [0, 1)")


@dataclass
class SearchResult:
    """Per pair: `loss[i, j]` = final squared-L2 loss of image i, seed j; `neg_log_prior[i, j]` = -log N(z_j,k; 0, I)."""

    loss: torch.Tensor
    neg_log_prior: torch.Tensor

    def scores(self) -> torch.Tensor:
        """ADGAN's score: the mean final loss over the seeds (higher = more anomalous)."""
        return self.loss.mean(1)

    def prior_scores(self) -> torch.Tensor:
        """The paper's alternative: negative mean log prior density of the final latents."""
        return self.neg_log_prior.mean(1)


def initial_latents(n_images: int, n_seed: int, latent: int, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """z_0 ~ N(0, I), shape (n_images, n_seed, latent), drawn on the CPU one image at a time.

    Drawing per image makes the latents of image i independent of batch sizes and of the
    device; `search` uses the same order when it draws them itself.
    """
    return torch.stack([torch.randn(n_seed, latent, generator=generator, dtype=dtype) for _ in range(n_images)]) \
        if n_images else torch.zeros(0, n_seed, latent, dtype=dtype)


# --- the generator as a list of layer descriptions ---------------------------------------------

@dataclass
class _ConvT:
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    shape: tuple  # the weight's shape (cin, cout, k, k)


@dataclass
class _BatchNorm:
    channels: int
    mean: torch.Tensor  # running statistics, shared by every pair
    inv_std: torch.Tensor


class _Act:
    def __init__(self, kind: str):
        self.kind = kind  # "relu" or "tanh"


def _parse(generator: nn.Module) -> tuple[list, list[torch.Tensor]]:
    """Layers and the trained parameter tensors (in `generator.parameters()` order)."""
    modules = list(generator) if isinstance(generator, nn.Sequential) else None
    if modules is None:
        raise TypeError(f"the batched search needs an nn.Sequential generator as nets.decoder builds, "
                        f"not {type(generator).__name__}")
    layers, params = [], []
    for m in modules:
        if isinstance(m, nn.ConvTranspose2d):
            if (m.bias is not None or m.groups != 1 or m.dilation != (1, 1) or m.output_padding != (0, 0)
                    or m.kernel_size[0] != m.kernel_size[1] or m.stride[0] != m.stride[1]
                    or m.padding[0] != m.padding[1]):
                raise TypeError(f"unsupported ConvTranspose2d in the generator: {m}")
            layers.append(_ConvT(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0],
                                 tuple(m.weight.shape)))
            params.append(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            if not (m.affine and m.track_running_stats):
                raise TypeError(f"unsupported BatchNorm2d in the generator (needs affine and running stats): {m}")
            inv_std = torch.rsqrt(m.running_var.detach() + m.eps)
            layers.append(_BatchNorm(m.num_features, m.running_mean.detach().clone(), inv_std))
            params += [m.weight, m.bias]
        elif isinstance(m, nn.ReLU):
            layers.append(_Act("relu"))
        elif isinstance(m, nn.Tanh):
            layers.append(_Act("tanh"))
        else:
            raise TypeError(f"the batched search does not know generator layer {type(m).__name__}")
    if list(generator.parameters()) and len(params) != len(list(generator.parameters())):
        raise TypeError("the generator has parameters outside the supported layers")
    return layers, [p.detach() for p in params]


class _PairBuffers:
    """Per-pair parameters, gradients and Adam moments for up to `capacity` pairs, allocated once."""

    def __init__(self, trained: list[torch.Tensor], capacity: int):
        self.trained = trained
        self.p = [torch.empty((capacity, *t.shape), dtype=t.dtype, device=t.device) for t in trained]
        self.g = [torch.empty_like(b) for b in self.p]
        self.m = [torch.empty_like(b) for b in self.p]
        self.v = [torch.empty_like(b) for b in self.p]
        self.steps = [torch.zeros((), dtype=torch.float32, device=trained[0].device) for _ in trained] \
            if trained else []

    def reset(self, n: int) -> None:
        """Pairs 0..n-1 start from the trained parameters with fresh Adam state."""
        for i, t in enumerate(self.trained):
            self.p[i][:n].copy_(t.expand_as(self.p[i][:n]))
            self.m[i][:n].zero_()
            self.v[i][:n].zero_()
            self.steps[i].zero_()


def _adam_(params, grads, exp_avgs, exp_avg_sqs, steps, lr: float, betas, eps: float) -> None:
    """One in-place Adam step (torch.optim.Adam's update, fused kernel) on stacked per-pair tensors."""
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=betas[0], beta2=betas[1],
                       weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)


class BatchedSearch:
    """Algorithm 1 for many (image, seed) pairs; build once per trained generator, call `run`."""

    def __init__(self, generator: nn.Module, settings: SearchSettings):
        self.settings = settings
        self.layers, self.trained = _parse(generator)
        first = self.layers[0]
        if not isinstance(first, _ConvT):
            raise TypeError("the generator must start with a ConvTranspose2d from the latent vector")
        self.latent = first.cin
        self.device = self.trained[0].device
        self.dtype = self.trained[0].dtype
        # the index of each layer's first parameter tensor
        self._param_index, i = [], 0
        for layer in self.layers:
            self._param_index.append(i)
            i += 1 if isinstance(layer, _ConvT) else 2 if isinstance(layer, _BatchNorm) else 0
        self._buffers: _PairBuffers | None = None

    # --- one layer, forward and backward; `w` is a per-pair (P, ...) tensor or the shared trained one ---

    @staticmethod
    def _convt_forward(layer: _ConvT, w: torch.Tensor, h: torch.Tensor, shared: bool) -> torch.Tensor:
        n, _, height, width = h.shape
        hw = height * width
        cols_per = layer.cout * layer.kernel * layer.kernel
        h2 = h.reshape(n, layer.cin, hw)
        if shared:  # one product for every pair: (n*hw, cin) @ (cin, cout*k*k)
            cols = (h2.transpose(1, 2).reshape(n * hw, layer.cin) @ w.reshape(layer.cin, cols_per))
            cols = cols.view(n, hw, cols_per).transpose(1, 2)
        else:
            cols = torch.bmm(w.view(n, layer.cin, cols_per).transpose(1, 2), h2)
        out_size = (height - 1) * layer.stride - 2 * layer.padding + layer.kernel
        if layer.kernel == out_size and hw == 1:  # 1x1 input, no overlap: col2im is a reshape
            return cols.reshape(n, layer.cout, out_size, out_size)
        return F.fold(cols, (out_size, out_size), layer.kernel, stride=layer.stride, padding=layer.padding)

    @staticmethod
    def _convt_backward(layer: _ConvT, w: torch.Tensor, h: torch.Tensor, d_out: torch.Tensor, shared: bool,
                        grad_out: torch.Tensor | None, need_input_grad: bool) -> torch.Tensor | None:
        n, _, height, width = h.shape
        hw = height * width
        cols_per = layer.cout * layer.kernel * layer.kernel
        if d_out.shape[-1] == layer.kernel and hw == 1:
            d_cols = d_out.reshape(n, cols_per, 1)
        else:
            d_cols = F.unfold(d_out, layer.kernel, stride=layer.stride, padding=layer.padding)  # (n, cols_per, hw)
        d_h = None
        if need_input_grad:
            if shared:
                d_h = (d_cols.transpose(1, 2).reshape(n * hw, cols_per) @ w.reshape(layer.cin, cols_per).t())
                d_h = d_h.view(n, hw, layer.cin).transpose(1, 2)
            else:
                d_h = torch.bmm(w.view(n, layer.cin, cols_per), d_cols)
            d_h = d_h.reshape(n, layer.cin, height, width)
        if grad_out is not None:  # dW[p] = h[p] (cin, hw) @ d_cols[p]^T (hw, cols_per), into the buffer
            torch.bmm(h.reshape(n, layer.cin, hw), d_cols.transpose(1, 2), out=grad_out.view(n, layer.cin, cols_per))
        return d_h

    # --- the search ------------------------------------------------------------------------------

    def _losses(self, z: torch.Tensor, x: torch.Tensor, params: list[torch.Tensor] | None, backward: bool,
                adam: bool) -> torch.Tensor:
        """Forward pass; with `backward`, the backward pass and (with `adam`) the per-layer Adam steps.

        `params` None means the shared trained weights. Returns the per-pair loss; z's gradient is
        written to self._dz.
        """
        s = self.settings
        n = z.shape[0]
        shared = params is None
        acts = [z.view(n, self.latent, 1, 1)]  # input of every layer
        h = acts[0]
        for li, layer in enumerate(self.layers):
            pi = self._param_index[li]
            if isinstance(layer, _ConvT):
                w = self.trained[pi] if shared else params[pi]
                h = self._convt_forward(layer, w, h, shared)
            elif isinstance(layer, _BatchNorm):
                xhat = (h - layer.mean.view(1, -1, 1, 1)) * layer.inv_std.view(1, -1, 1, 1)
                if shared:
                    gamma, beta = self.trained[pi].view(1, -1, 1, 1), self.trained[pi + 1].view(1, -1, 1, 1)
                else:
                    gamma, beta = params[pi].view(n, -1, 1, 1), params[pi + 1].view(n, -1, 1, 1)
                acts[-1] = xhat  # BN's backward needs x-hat, not its input
                h = torch.addcmul(beta, xhat, gamma)
            elif layer.kind == "relu":
                h = torch.relu(h)
            else:
                h = torch.tanh(h)
            acts.append(h)
        diff = h - x
        loss = diff.flatten(1).pow(2).sum(1)
        if not backward:
            return loss

        buf = self._buffers
        d = 2.0 * diff
        for li in range(len(self.layers) - 1, -1, -1):
            layer, inp, out = self.layers[li], acts[li], acts[li + 1]
            pi = self._param_index[li]
            if isinstance(layer, _Act):
                d = d * (1 - out * out) if layer.kind == "tanh" else d * (out > 0)
            elif isinstance(layer, _BatchNorm):
                if adam:
                    torch.sum(d * inp, dim=(2, 3), out=buf.g[pi][:n])
                    torch.sum(d, dim=(2, 3), out=buf.g[pi + 1][:n])
                gamma = self.trained[pi].view(1, -1, 1, 1) if shared else params[pi].view(n, -1, 1, 1)
                d = d * (gamma * layer.inv_std.view(1, -1, 1, 1))
                if adam:
                    idx = [pi, pi + 1]
                    _adam_([buf.p[i][:n] for i in idx], [buf.g[i][:n] for i in idx], [buf.m[i][:n] for i in idx],
                           [buf.v[i][:n] for i in idx], [buf.steps[i] for i in idx], s.lr_theta, s.betas, s.eps)
            else:
                w = self.trained[pi] if shared else params[pi]
                d = self._convt_backward(layer, w, inp, d, shared, buf.g[pi][:n] if adam else None,
                                         need_input_grad=True)
                if adam:  # after the input gradient, which needs the old weights
                    _adam_([buf.p[pi][:n]], [buf.g[pi][:n]], [buf.m[pi][:n]], [buf.v[pi][:n]], [buf.steps[pi]],
                           s.lr_theta, s.betas, s.eps)
        self._dz = d.reshape(n, self.latent).contiguous()
        return loss

    def _ensure_buffers(self, capacity: int) -> _PairBuffers:
        if self._buffers is None or self._buffers.p[0].shape[0] < capacity:
            self._buffers = None
            self._buffers = _PairBuffers(self.trained, capacity)
        return self._buffers

    def _run_pairs(self, z0: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k search steps for n pairs (z0 (n, latent), x (n, C, H, W)); final losses and final latents."""
        s = self.settings
        n = z0.shape[0]
        update = s.update_params and s.k > 0 and bool(self.trained)
        buf = self._ensure_buffers(n) if update else None
        if update:
            buf.reset(n)
        z = z0.clone()
        z_m, z_v = torch.zeros_like(z), torch.zeros_like(z)
        z_step = torch.zeros((), dtype=torch.float32, device=z.device)
        own = [p[:n] for p in buf.p] if update else None
        for t in range(s.k):
            # the first step (and, without parameter updates, every step) runs on the shared trained weights
            params = own if t > 0 else None
            self._losses(z, x, params, backward=True, adam=update)
            _adam_([z], [self._dz], [z_m], [z_v], [z_step], s.lr_z, s.betas, s.eps)
        final = self._losses(z, x, own, backward=False, adam=False)
        return final, z

    @torch.no_grad()
    def run(self, x: torch.Tensor, z0: torch.Tensor | None = None, generator: torch.Generator | None = None,
            progress=None) -> SearchResult:
        """Search for every image of x (N, C, H, W); z0 (N, n_seed, latent) or drawn with `generator`.

        Memory is bounded by `pairs_per_batch` (plus one image's latents at a time when drawn here),
        whatever N is.
        """
        s = self.settings
        n_images = x.shape[0]
        if z0 is not None and tuple(z0.shape) != (n_images, s.n_seed, self.latent):
            raise ValueError(f"z0 has shape {tuple(z0.shape)}, expected {(n_images, s.n_seed, self.latent)}")
        loss = torch.empty(n_images, s.n_seed, dtype=self.dtype)
        nlp = torch.empty(n_images, s.n_seed, dtype=self.dtype)
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        P = s.pairs_per_batch
        pending_z: list[torch.Tensor] = []  # latents of pairs waiting for a batch
        pending_pairs: list[tuple[int, int]] = []
        next_image = 0

        def pairs_available():
            return len(pending_pairs)

        while next_image < n_images or pending_pairs:
            while pairs_available() < P and next_image < n_images:
                zi = z0[next_image] if z0 is not None else torch.randn(s.n_seed, self.latent, generator=generator,
                                                                       dtype=torch.float32)
                pending_z.extend(zi.to(device=self.device, dtype=self.dtype).unbind(0))
                pending_pairs.extend((next_image, j) for j in range(s.n_seed))
                next_image += 1
            take = min(P, len(pending_pairs))
            pairs, pending_pairs = pending_pairs[:take], pending_pairs[take:]
            zb = torch.stack(pending_z[:take])
            del pending_z[:take]
            img = torch.tensor([i for i, _ in pairs], device=x.device)
            xb = x.index_select(0, img).to(device=self.device, dtype=self.dtype)
            final, zk = self._run_pairs(zb, xb)
            rows = torch.tensor([i for i, _ in pairs])
            cols = torch.tensor([j for _, j in pairs])
            loss[rows, cols] = final.to("cpu", self.dtype)
            nlp[rows, cols] = (0.5 * zk.pow(2).sum(1) + self.latent * half_log_2pi).to("cpu", self.dtype)
            if progress is not None:
                progress(take)
        return SearchResult(loss, nlp)


def adgan_search(generator: nn.Module, x: torch.Tensor, settings: SearchSettings = SearchSettings(),
                 z0: torch.Tensor | None = None, rng: torch.Generator | None = None) -> SearchResult:
    """Algorithm 1 on every image of x with a trained generator (not modified). See the module doc."""
    return BatchedSearch(generator, settings).run(x, z0=z0, generator=rng)
