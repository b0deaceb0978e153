"""ADGAN's latent search (Deecke et al. 2018, Algorithm 1), batched over (image, seed) pairs.

For a test image x, `n_seed` latent vectors z_j,0 are drawn from the training prior
N(0, I). Every pair (x, j) owns a copy theta_j of the generator's parameters. For
t = 1..k, with l(z, theta) = ||g_theta(z) - x||^2 (squared L2, summed over pixels):

    z_j,t     = Adam_z (z_j,t-1,     grad_z     l(z_j,t-1, theta_j,t-1))   lr 0.25
    theta_j,t = Adam_th(theta_j,t-1, grad_theta l(z_j,t-1, theta_j,t-1))   lr 5e-5

both with betas (0.5, 0.999) and eps 1e-8, one optimiser state per pair (what a fresh
`torch.optim.Adam` per pair keeps). Both updates use the gradient of the same loss
evaluation. The final loss of a pair is l(z_j,k, theta_j,k): one more forward pass
after the k-th update, exactly the quantity Algorithm 1 returns (k gradient
evaluations, k + 1 forward passes). The score of x is the mean final loss over its
seeds. theta starts from the trained values for every pair, so nothing carries over
between images, and the trained generator is never written to. BatchNorm uses its
running statistics (eval mode); its scale and shift are parameters and are searched.

Why the search is written out by hand: every pair owns 1.7 M weights with their
gradient and two Adam moments (~27 MB in float32 at width 64, if stored as an optimiser
stores them), so on a CPU the search is bound by memory traffic as much as by arithmetic
(~37 GFLOP per image at the paper's settings). Stacking all 64 seeds into one grouped
call (vmap, grouped convolutions) streams all that state from DRAM several times per step
and was measured slower than the plain loop. Here:

- a few pairs run at once (`pairs_per_batch`); the generator's forward and backward
  passes are batched matrix products (a transposed convolution is a product with the
  weight matrix followed by col2im; its adjoint is im2col followed by a product);
  activations are kept channels-last and col2im / im2col are one `index_add_` /
  `index_select` each, which is much faster than `F.fold` / `F.unfold` on a CPU;
- the first step runs on the shared trained weights (one product for all pairs of the
  batch), and a pair's copy of a tensor is first written by its first update;
- weight gradients are written into a preallocated block and each block takes its Adam
  step right away, while the block's weights, gradient and moments are still in cache;
  on a CPU the work goes in blocks of about 2 MiB per tensor (row blocks of one pair's
  big weights, or the whole small tensors of several pairs);
- on a CPU (`fused`, the default there) the Adam steps are the numba kernels of
  `kernels.py` beside this module: the first step reads neither old weights nor moments, the last writes
  no moments, and the first layer (a product with z, 60 % of the weights) keeps no
  moments and no gradient at all: its gradients are outer products z (outer) d, so the
  kernel replays both moments from the few z and d vectors of the steps so far, and
  computes dz, the Adam steps of W and z and the next step's product z_new @ W_new in one
  pass over W. A pair's state drops to ~12 MB and the first layer's traffic to a read
  and a write of W per step. With `fused=False` (a GPU, and the tests' cross-check on a
  CPU) everything is torch operations: `torch._fused_adam_` (torch.optim.Adam's own
  update) on stacked per-pair tensors, whole tensors at once on a GPU with many more
  pairs per batch.

Weights are stored per pair in whichever layout the products want (Adam does not care);
nothing is ever written back to the generator.

On a CPU, `workers` batches run at once, each in its own thread on one core: the small
per-pair products and Adam blocks gain little from splitting one batch over two threads,
while two batches side by side take about half the one-batch time.

What limits it (benchmarks/bench_adgan_search.py prints all of this at the paper's
settings): the per-pair products are small, 16 or 64 rows (one per input pixel) against
a private weight matrix, and the CPU BLAS runs the 16-row one at under half its large-GEMM
rate; with the Adam arithmetic (a square root and a division per weight and step) they
make up the time. The README gives the measured times and ratios.

Only the layers `nets.decoder` builds are supported (ConvTranspose2d without bias,
BatchNorm2d, ReLU, Tanh, in an nn.Sequential that starts from the 1x1 latent); other
generators are refused with the name of the layer.
"""

from __future__ import annotations

import collections
import copy
import math
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganad.methods.adgan import kernels


@dataclass(frozen=True)
class SearchSettings:
    """Algorithm 1's parameters; the defaults are the paper's (Section 4.2 and its footnote 9)."""

    n_seed: int = 64
    k: int = 5
    lr_z: float = 0.25
    lr_theta: float = 5e-5
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    pairs_per_batch: int = 8
    update_params: bool = True
    workers: int = 1  # pair batches searched at once, each on one CPU thread (see BatchedSearch.run)

    def __post_init__(self):
        for name in ("n_seed", "pairs_per_batch", "workers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"search {name} = {value!r} must be a positive integer")
        if not (isinstance(self.k, int) and self.k >= 0):
            raise ValueError(f"search k = {self.k!r} must be a non-negative integer")
        if not (self.lr_z >= 0 and self.lr_theta >= 0 and self.eps > 0):
            raise ValueError("search learning rates must be >= 0 and eps > 0")
        if not (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"search betas = {self.betas!r} must be two numbers in [0, 1)")


@dataclass
class SearchResult:
    """Per pair: `loss[i, j]`, the final squared-L2 loss of image i and seed j, and
    `neg_log_prior[i, j]` = -log N(z_ij,k; 0, I) of its final latent vector."""

    loss: torch.Tensor
    neg_log_prior: torch.Tensor

    def scores(self) -> torch.Tensor:
        """ADGAN's score: the mean final loss over the seeds (higher = more anomalous)."""
        return self.loss.mean(1)

    def prior_scores(self) -> torch.Tensor:
        """The paper's alternative (Section 3.2): negative mean log prior density of the final latents."""
        return self.neg_log_prior.mean(1)


def initial_latents(
    n_images: int,
    n_seed: int,
    latent: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """z_0 ~ N(0, I) of shape (n_images, n_seed, latent), drawn on the CPU one image at a time,
    in the order `BatchedSearch.run` draws them itself (so results do not depend on batch sizes)."""
    if n_images == 0:
        return torch.zeros(0, n_seed, latent, dtype=dtype)
    return torch.stack([torch.randn(n_seed, latent, generator=generator) for _ in range(n_images)]).to(dtype)


# --- the generator as a list of layer descriptions ---------------------------------------------

# Transposed convolutions with at least this many output channels keep channels-last activations
# and col2im by index_add_; narrower ones (the image layer) use F.fold on channels-first columns.
_CHANNELS_LAST_MIN = 8


@dataclass
class _ConvT:
    cin: int
    cout: int
    kernel: int
    stride: int
    padding: int
    channels_last: bool  # weight stored as (cin, k, k, cout), else (cin, cout, k, k)
    index: dict  # input size -> (col2im / im2col index, output size), built on first use

    @property
    def cols(self) -> int:
        return self.cout * self.kernel * self.kernel

    def out_size(self, size: int) -> int:
        return (size - 1) * self.stride - 2 * self.padding + self.kernel

    def col_index(self, size: int, device) -> tuple[torch.Tensor, int]:
        """For each (input pixel, ki, kj): the output pixel it lands on, or o*o (a dummy row) if cropped."""
        if size not in self.index:
            o = self.out_size(size)
            i = torch.arange(size).view(size, 1, 1, 1)
            j = torch.arange(size).view(1, size, 1, 1)
            ki = torch.arange(self.kernel).view(1, 1, -1, 1)
            kj = torch.arange(self.kernel).view(1, 1, 1, -1)
            y, x = i * self.stride - self.padding + ki, j * self.stride - self.padding + kj
            valid = (y >= 0) & (y < o) & (x >= 0) & (x < o)
            self.index[size] = (torch.where(valid, y * o + x, o * o).reshape(-1).to(device), o)
        return self.index[size]


@dataclass
class _BatchNorm:
    mean: torch.Tensor  # running statistics, shared by every pair
    inv_std: torch.Tensor


@dataclass
class _Act:
    kind: str  # "relu" or "tanh"


def _parse(generator: nn.Module) -> tuple[list, list[torch.Tensor]]:
    """Layer descriptions, and the trained parameters in the layouts the search stores them in."""
    if not isinstance(generator, nn.Sequential):
        raise TypeError(
            f"the batched search needs an nn.Sequential generator as nets.decoder builds, "
            f"not {type(generator).__name__}"
        )
    layers, params = [], []
    for m in generator:
        if isinstance(m, nn.ConvTranspose2d):
            if (
                m.bias is not None
                or m.groups != 1
                or m.dilation != (1, 1)
                or m.output_padding != (0, 0)
                or m.kernel_size[0] != m.kernel_size[1]
                or m.stride[0] != m.stride[1]
                or m.padding[0] != m.padding[1]
                or m.padding_mode != "zeros"
            ):
                raise TypeError(f"unsupported ConvTranspose2d in the generator: {m}")
            channels_last = m.out_channels >= _CHANNELS_LAST_MIN or not layers
            layers.append(
                _ConvT(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], channels_last, {})
            )
            w = m.weight.detach()
            params.append((w.permute(0, 2, 3, 1) if channels_last else w).contiguous())
        elif isinstance(m, nn.BatchNorm2d):
            if not (m.affine and m.track_running_stats and m.running_var is not None):
                raise TypeError(f"unsupported BatchNorm2d in the generator (needs affine and running stats): {m}")
            layers.append(_BatchNorm(m.running_mean.detach().clone(), torch.rsqrt(m.running_var.detach() + m.eps)))
            params += [m.weight.detach(), m.bias.detach()]
        elif isinstance(m, nn.ReLU):
            layers.append(_Act("relu"))
        elif isinstance(m, nn.Tanh):
            layers.append(_Act("tanh"))
        else:
            raise TypeError(f"the batched search does not know generator layer {type(m).__name__}")
    first = layers[0] if layers else None
    if not (isinstance(first, _ConvT) and first.stride == 1 and first.padding == 0):
        raise TypeError(
            "the generator must start with a ConvTranspose2d (stride 1, no padding) from the 1x1 "
            "latent, as nets.decoder does"
        )
    return layers, params


def _adam_(params, grads, exp_avgs, exp_avg_sqs, steps, lr: float, betas, eps: float) -> None:
    """torch.optim.Adam's update (its fused kernel), in place, on stacked per-pair tensors.

    `steps` must already count this step: all blocks of one tensor share a counter raised once per step.
    """
    torch._fused_adam_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        steps,
        lr=lr,
        beta1=betas[0],
        beta2=betas[1],
        weight_decay=0.0,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )


# On a CPU a pair's big weight tensors are updated in blocks of about this many elements (2 MiB in
# float32), so that a block's weights, gradient and moments stay in cache from the gradient to the
# Adam step (and, in the first layer, to the next step's forward product). Measured best of 2^17..2^21.
CPU_BLOCK_ELEMENTS = 1 << 19


@dataclass
class _Block:
    """Views of one block of a parameter tensor: rows `rows` of pair `pair`, or all rows of pairs `pairs`."""

    pair: int | None
    pairs: slice
    rows: slice
    p: torch.Tensor  # (pairs, rows, cols), or (rows, cols) for a single pair
    g: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    trained: torch.Tensor  # the trained values of these rows, broadcastable to p
    extra: dict  # first layer: views of z, its gradient and moments, and the next product


class BatchedSearch:
    """Algorithm 1 for many (image, seed) pairs; build once per trained generator, then `run`.

    `block_elements` (default: CPU_BLOCK_ELEMENTS on a CPU, whole tensors on a GPU) only changes
    how the work is cut, never the result.
    """

    def __init__(
        self,
        generator: nn.Module,
        settings: SearchSettings,
        block_elements: int | None = None,
        fused: bool | None = None,
    ):
        self.settings = settings
        self.layers, self.trained = _parse(generator)
        self.latent = self.layers[0].cin
        self.device = self.trained[0].device
        self.dtype = self.trained[0].dtype
        self.block_elements = (
            block_elements
            if block_elements is not None
            else (CPU_BLOCK_ELEMENTS if self.device.type == "cpu" else None)
        )
        self.fused = self.device.type == "cpu" if fused is None else fused
        if self.fused and self.device.type != "cpu":
            raise ValueError("the fused search kernels run on the CPU only; use fused=False on a GPU")
        self._param_index, i = [], 0
        for layer in self.layers:
            self._param_index.append(i)
            i += 1 if isinstance(layer, _ConvT) else 2 if isinstance(layer, _BatchNorm) else 0
        self._capacity = 0
        self._plans: dict = {}

    def per_pair_bytes(self) -> int:
        """Bytes of private state per pair once allocated: weights, moments, and the fused first layer's
        z and d history (gradients live in one shared block)."""
        if not self._capacity:
            raise RuntimeError("nothing allocated yet: run a search first")
        state = [t for t in (*self.p, *self.m, *self.v, self.z_hist, self.d_hist) if t is not None]
        return sum(t.numel() * t.element_size() for t in state) // self._capacity

    # --- buffers and blocks ----------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        """Per-pair parameters, Adam moments and latent buffers for up to `capacity` pairs, allocated once."""
        if capacity <= self._capacity:
            return
        self._plans = {}
        self.p = self.m = self.v = self.g_small = self.scratch = self.z_hist = self.d_hist = None  # free first
        kw = dict(dtype=self.dtype, device=self.device)
        self.p = [torch.empty((capacity, *t.shape), **kw) for t in self.trained]
        # fused: the first layer's moments are replayed from the history of z and of its output gradient
        self.m = [torch.empty_like(b) if i or not self.fused else None for i, b in enumerate(self.p)]
        self.v = [torch.empty_like(b) if i or not self.fused else None for i, b in enumerate(self.p)]
        if self.fused:
            self.z_hist = torch.empty(capacity, self.latent, self.settings.k, **kw)
            self.d_hist = torch.empty(capacity, self.settings.k, self.trained[0][0].numel(), **kw)
        self.steps = [torch.zeros((), dtype=torch.float32, device=self.device) for _ in self.trained]
        # BatchNorm parameter gradients whole; convolution weight gradients one block at a time
        self.g_small = {i: torch.empty((capacity, *t.shape), **kw) for i, t in enumerate(self.trained) if t.dim() == 1}
        counts = range(1, capacity + 1) if self.block_elements is not None else [capacity]
        blocked = [t for i, t in enumerate(self.trained) if t.dim() > 1 and (i or not self.fused)]
        largest = max(
            (q.stop - q.start) * (r.stop - r.start) * t[0].numel()
            for n in counts
            for t in blocked
            for q, r in self._slices(n, t.shape[0], t[0].numel())
        )
        self.scratch = torch.empty(largest, **kw)
        # z, its gradient and Adam moments, and the first layer's product (two: this step's, the next)
        self.z, self.dz, self.zm, self.zv = (torch.empty(capacity, self.latent, **kw) for _ in range(4))
        self.y = [torch.empty(capacity, self.trained[0][0].numel(), **kw) for _ in range(2)]
        self._capacity = capacity

    def _slices(self, n: int, rows: int, cols: int) -> list[tuple[slice, slice]]:
        """(pairs, rows) slices covering n pairs' (rows, cols) weights, about `block_elements` each:
        whole tensors of several pairs, or row blocks of one pair."""
        if self.block_elements is None:
            return [(slice(0, n), slice(0, rows))]
        if rows * cols <= self.block_elements:
            step = max(1, self.block_elements // (rows * cols))
            return [(slice(q, min(q + step, n)), slice(0, rows)) for q in range(0, n, step)]
        step = max(1, self.block_elements // cols)
        return [(slice(q, q + 1), slice(r, min(r + step, rows))) for q in range(n) for r in range(0, rows, step)]

    def _plan(self, i: int, n: int, next_y: int = 0) -> list[_Block]:
        """The blocks of parameter tensor i for n pairs, their views made once."""
        key = (i, n, next_y)
        if key not in self._plans:
            rows, cols = self.trained[i].shape[0], self.trained[i][0].numel()
            blocks = []
            slices = self._slices(n, rows, cols) if self.trained[i].dim() > 1 else [(slice(0, n), slice(0, rows))]
            for ps, rs in slices:
                shape = (ps.stop - ps.start, rs.stop - rs.start, cols)
                single = rs != slice(0, rows)  # a row block of one pair
                views = [b[ps, rs].view(shape) for b in (self.p[i], self.m[i], self.v[i])]
                # gradient space: the shared scratch for weights; BatchNorm's are in g_small
                views.insert(
                    1,
                    self.scratch[: views[0].numel()].view(shape)
                    if self.trained[i].dim() > 1
                    else self.g_small[i][ps].view(shape),
                )
                extra = {}
                if i == 0:
                    extra = {
                        "z": self.z[ps, rs],
                        "dz": self.dz[ps, rs],
                        "zm": self.zm[ps, rs],
                        "zv": self.zv[ps, rs],
                        "y": self.y[next_y][ps],
                    }
                    if single:
                        extra["z_row"], extra["dz"] = self.z[ps, rs], self.dz[ps.start, rs]
                if single:
                    views = [t[0] if t is not None else None for t in views]
                trained = self.trained[i][rs].reshape(shape[1], cols)
                blocks.append(
                    _Block(
                        ps.start if single else None, ps, rs, *views, trained if single else trained.unsqueeze(0), extra
                    )
                )
            self._plans[key] = blocks
        return self._plans[key]

    @staticmethod
    def _start(block: _Block) -> None:
        """At the first step a block is set to the trained values and its moments to zero, just before
        its Adam step, so that it is written once, while in cache."""
        block.p.copy_(block.trained.expand_as(block.p))
        block.m.zero_()
        block.v.zero_()

    # --- forward ---------------------------------------------------------------------------------

    def _first_forward(self, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The first layer with the trained weights: z (n, latent) @ W (latent, k*k*cout)."""
        return torch.mm(z, self.trained[0].view(self.latent, -1), out=out)

    def _weights(self, pi: int, params, n: int) -> torch.Tensor:
        """Weight matrix (cin, cols), shared, or per pair (n, cin, cols)."""
        if params is None:
            return self.trained[pi].reshape(self.trained[pi].shape[0], -1)
        w = params[pi][:n]
        return w.view(n, w.shape[1], -1)

    def _forward(self, y1: torch.Tensor, x_cl: torch.Tensor, params):
        """Every layer after the first product, from its output y1 (n, k*k*cout); channels-last throughout.

        `params` None = the shared trained parameters. Returns per-pair losses, layer inputs, and g(z) - x.
        """
        n = y1.shape[0]
        first = self.layers[0]
        h = y1.view(n, first.kernel, first.kernel, first.cout)
        acts = [None, h]  # acts[i] = input of layer i (x-hat for BatchNorm)
        for li in range(1, len(self.layers)):
            layer, pi = self.layers[li], self._param_index[li]
            if isinstance(layer, _ConvT):
                h = self._convt_forward(layer, self._weights(pi, params, n), h, shared=params is None)
            elif isinstance(layer, _BatchNorm):
                h = (h - layer.mean) * layer.inv_std
                acts[-1] = h
                if params is None:
                    h = torch.addcmul(self.trained[pi + 1], h, self.trained[pi])
                else:
                    h = torch.addcmul(params[pi + 1][:n].view(n, 1, 1, -1), h, params[pi][:n].view(n, 1, 1, -1))
            elif layer.kind == "relu":
                h = torch.relu(h)
            else:
                h = torch.tanh(h)
            acts.append(h)
        diff = h - x_cl
        return diff.square().sum((1, 2, 3)), acts, diff

    @staticmethod
    def _convt_forward(layer: _ConvT, w: torch.Tensor, h: torch.Tensor, shared: bool) -> torch.Tensor:
        n, size = h.shape[0], h.shape[1]
        rows = h.reshape(n, size * size, layer.cin)  # one row per input pixel
        if shared:
            cols = (rows.reshape(-1, layer.cin) @ w).view(n, size * size, layer.cols)
        else:
            cols = torch.bmm(rows, w)
        if layer.channels_last:  # cols (n, pixels, (ki, kj, cout)): col2im is one index_add_
            index, o = layer.col_index(size, h.device)
            out = torch.zeros(n, o * o + 1, layer.cout, dtype=h.dtype, device=h.device)
            out.index_add_(1, index, cols.view(n, -1, layer.cout))
            return out[:, : o * o].view(n, o, o, layer.cout)
        out = F.fold(
            cols.transpose(1, 2), (layer.out_size(size),) * 2, layer.kernel, stride=layer.stride, padding=layer.padding
        )
        return out.permute(0, 2, 3, 1)

    @staticmethod
    def _im2col(layer: _ConvT, d_out: torch.Tensor, size: int) -> torch.Tensor:
        """The adjoint of col2im: d_cols (n, pixels, cols) from the output gradient (n, o, o, cout)."""
        n = d_out.shape[0]
        if layer.channels_last:
            index, o = layer.col_index(size, d_out.device)
            d_ext = torch.zeros(n, o * o + 1, layer.cout, dtype=d_out.dtype, device=d_out.device)
            d_ext[:, : o * o].view(n, o, o, layer.cout).copy_(d_out)
            return d_ext.index_select(1, index).view(n, size * size, layer.cols)
        d_cols = F.unfold(d_out.permute(0, 3, 1, 2), layer.kernel, stride=layer.stride, padding=layer.padding)
        return d_cols.transpose(1, 2)

    # --- backward with the Adam steps ------------------------------------------------------------

    def _update(self, block: _Block, i: int, step: int) -> None:
        """Adam step `step` (1-based) on one block of parameter tensor i, whose gradient is in block.g."""
        s = self.settings
        if self.fused:
            kernels.adam_(
                block.p, block.g, block.m, block.v, block.trained, s.lr_theta, s.betas, s.eps, step, last=step == s.k
            )
            return
        if step == 1:
            self._start(block)
        _adam_([block.p], [block.g], [block.m], [block.v], [self.steps[i]], s.lr_theta, s.betas, s.eps)

    def _backward_update(self, acts, diff, next_y: int, step: int) -> None:
        """Backpropagate the per-pair losses and take every pair's Adam steps, layer by layer.

        Each layer's input gradient is computed from its weights before they change.
        """
        n = diff.shape[0]
        torch._foreach_add_(self.steps, 1)
        self.z_step.add_(1)
        d = 2.0 * diff
        for li in range(len(self.layers) - 1, 0, -1):
            layer, pi = self.layers[li], self._param_index[li]
            if isinstance(layer, _Act):
                out = acts[li + 1]
                d = d * (1 - out * out) if layer.kind == "tanh" else d * (out > 0)
            elif isinstance(layer, _BatchNorm):
                gamma, beta = self._plan(pi, n)[0], self._plan(pi + 1, n)[0]  # tiny: always one block
                torch.sum(d * acts[li], dim=(1, 2), out=gamma.g.view(n, -1))
                torch.sum(d, dim=(1, 2), out=beta.g.view(n, -1))
                # gamma before its step: the trained values at the first step
                d = d * (
                    (gamma.p if step > 1 else gamma.trained).view(-1, 1, 1, layer.inv_std.shape[0]) * layer.inv_std
                )
                self._update(gamma, pi, step)
                self._update(beta, pi + 1, step)
            else:
                d = self._convt_backward_update(layer, pi, acts[li], d, step)
        self._first_backward_update(d.reshape(n, -1), next_y, step)

    def _convt_backward_update(
        self, layer: _ConvT, pi: int, h: torch.Tensor, d_out: torch.Tensor, step: int
    ) -> torch.Tensor:
        n, size = h.shape[0], h.shape[1]
        pixels = size * size
        d_cols = self._im2col(layer, d_out, size)  # (n, pixels, cols)
        rows = h.reshape(n, pixels, layer.cin)
        d_h = torch.empty(n, layer.cin, pixels, dtype=h.dtype, device=h.device)  # transposed: rows of W
        for block in self._plan(pi, n):
            q, rs, ps = block.pair, block.rows, block.pairs
            w = block.p if step > 1 else block.trained  # the weights before this step
            if q is not None:
                torch.mm(w, d_cols[q].t(), out=d_h[q, rs])
                torch.mm(rows[q, :, rs].t(), d_cols[q], out=block.g)
            else:
                torch.matmul(w, d_cols[ps].transpose(1, 2), out=d_h[ps])
                torch.bmm(rows[ps].transpose(1, 2), d_cols[ps], out=block.g)
            self._update(block, pi, step)
        return d_h.transpose(1, 2).view(n, size, size, layer.cin)

    def _first_backward_update(self, d: torch.Tensor, next_y: int, step: int) -> None:
        """First layer: dz = W d and dW = z (outer) d; Adam on W and z block by block; y_next = z_new @ W_new."""
        s = self.settings
        n = d.shape[0]
        if self.fused:  # one kernel per pair; the moments of W are replayed from z and d (see kernels)
            self.d_hist[:n, step - 1].copy_(d)
            y, trained = self.y[next_y], self.trained[0].view(self.latent, -1)
            for q in range(n):
                kernels.first_layer_(
                    self.p[0][q].view(self.latent, -1),
                    trained,
                    self.z_hist[q],
                    self.d_hist[q],
                    self.z[q],
                    self.zm[q],
                    self.zv[q],
                    y[q],
                    s.lr_theta,
                    s.lr_z,
                    s.betas,
                    s.eps,
                    step,
                    last=step == s.k,
                )
            return
        for block in self._plan(0, n, next_y):
            if step == 1:
                self._start(block)
            e, q = block.extra, block.pair
            if q is not None:
                torch.mv(block.p, d[q], out=e["dz"])
                torch.mul(e["z"].view(-1, 1), d[q].view(1, -1), out=block.g)
            else:
                dp = d[block.pairs]
                torch.bmm(dp.unsqueeze(1), block.p.transpose(1, 2), out=e["dz"].unsqueeze(1))  # (W d)^T: fast on a CPU
                torch.mul(e["z"].unsqueeze(2), dp.unsqueeze(1), out=block.g)
            _adam_([block.p], [block.g], [block.m], [block.v], [self.steps[0]], s.lr_theta, s.betas, s.eps)
            _adam_([e["z"]], [e["dz"]], [e["zm"]], [e["zv"]], [self.z_step], s.lr_z, s.betas, s.eps)
            if q is not None:
                if block.rows.start == 0:
                    torch.mm(e["z_row"], block.p, out=e["y"])
                else:
                    e["y"].addmm_(e["z_row"], block.p)
            else:
                torch.bmm(e["z"].unsqueeze(1), block.p, out=e["y"].unsqueeze(1))

    def _backward_shared(self, acts, diff, z, zs) -> None:
        """Without parameter updates: backpropagate to z through the trained weights; Adam on z only."""
        s = self.settings
        n = diff.shape[0]
        d = 2.0 * diff
        for li in range(len(self.layers) - 1, 0, -1):
            layer, pi = self.layers[li], self._param_index[li]
            if isinstance(layer, _Act):
                out = acts[li + 1]
                d = d * (1 - out * out) if layer.kind == "tanh" else d * (out > 0)
            elif isinstance(layer, _BatchNorm):
                d = d * (self.trained[pi] * layer.inv_std)
            else:
                size = acts[li].shape[1]
                d_cols = self._im2col(layer, d, size)
                d = d_cols.reshape(n * size * size, -1) @ self.trained[pi].reshape(layer.cin, -1).t()
                d = d.view(n, size, size, layer.cin)
        dz = d.reshape(n, -1) @ self.trained[0].view(self.latent, -1).t()
        zs[2].add_(1)
        _adam_([z], [dz.contiguous()], [zs[0]], [zs[1]], [zs[2]], s.lr_z, s.betas, s.eps)

    # --- the search ------------------------------------------------------------------------------

    def _run_pairs(self, z0: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k search steps for n pairs (z0 (n, latent), x (n, C, H, W)); final losses and final latents."""
        s = self.settings
        n = z0.shape[0]
        x_cl = x.permute(0, 2, 3, 1)
        if not (s.update_params and s.k > 0):  # every step on the shared trained weights
            z = z0.clone()
            zs = (torch.zeros_like(z), torch.zeros_like(z), torch.zeros((), dtype=torch.float32, device=z.device))
            for _ in range(s.k):
                _, acts, diff = self._forward(z @ self.trained[0].view(self.latent, -1), x_cl, None)
                self._backward_shared(acts, diff, z, zs)
            final, _, _ = self._forward(z @ self.trained[0].view(self.latent, -1), x_cl, None)
            return final, z
        self._allocate(n)
        for step in self.steps:
            step.zero_()
        self.z_step = torch.zeros((), dtype=torch.float32, device=self.device)
        z = self.z[:n]
        z.copy_(z0)
        self.zm[:n].zero_()
        self.zv[:n].zero_()
        cur = 0
        y1 = self._first_forward(z, self.y[cur][:n])
        for t in range(s.k):
            # the first step runs on the shared trained weights; the first layer's product for the
            # next step is made by its update (into the other y buffer)
            _, acts, diff = self._forward(y1, x_cl, self.p if t > 0 else None)
            self._backward_update(acts, diff, 1 - cur, step=t + 1)
            cur = 1 - cur
            y1 = self.y[cur][:n]
        final, _, _ = self._forward(y1, x_cl, self.p)
        return final, z.clone()

    def _pair_batches(self, x: torch.Tensor, z0: torch.Tensor | None, generator: torch.Generator | None):
        """(start, stop, z, x) per batch of `pairs_per_batch` pairs, in order (image 0's seeds, then image
        1's, ...); latents are drawn one image at a time as batches need them."""
        s = self.settings
        total = x.shape[0] * s.n_seed
        pending = torch.zeros(0, self.latent, dtype=self.dtype, device=self.device)  # drawn, not yet searched
        drawn = 0
        for start in range(0, total, s.pairs_per_batch):
            stop = min(start + s.pairs_per_batch, total)
            parts = [pending]
            while sum(len(t) for t in parts) < stop - start:
                zi = z0[drawn] if z0 is not None else torch.randn(s.n_seed, self.latent, generator=generator)
                parts.append(zi.to(device=self.device, dtype=self.dtype))
                drawn += 1
            zb = torch.cat(parts)
            zb, pending = zb[: stop - start], zb[stop - start :]
            xb = x[torch.arange(start, stop) // s.n_seed].to(device=self.device, dtype=self.dtype)
            yield start, stop, zb, xb

    def _worker_copies(self, n: int) -> list[BatchedSearch]:
        """This search and n - 1 copies that share its layers and trained weights but own their buffers."""
        size = 1
        for layer in self.layers:  # build the col2im indices here rather than racing in the workers
            if isinstance(layer, _ConvT):
                layer.col_index(size, self.device)
                size = layer.out_size(size)
        copies = [self]
        for _ in range(n - 1):
            other = copy.copy(self)
            other._capacity, other._plans = 0, {}
            copies.append(other)
        return copies

    @torch.no_grad()
    def run(
        self, x: torch.Tensor, z0: torch.Tensor | None = None, generator: torch.Generator | None = None, progress=None
    ) -> SearchResult:
        """Search every image of x (N, C, H, W), from z0 (N, n_seed, latent) or latents drawn with `generator`.

        Pairs are taken in order (image 0's seeds, then image 1's, ...) `pairs_per_batch` at a time;
        memory is bounded by that, whatever N is. `progress(n_pairs_done)` is called after each batch.

        With `workers` > 1, that many batches are searched at once, each in its own thread with its own
        buffers and torch on one thread: on a CPU this was measured about 1.8x faster on 2 cores than
        one batch at a time on 2 threads, whose small per-pair products and Adam blocks parallelise
        poorly. The batches, and so the results, are the same whatever `workers` is.
        """
        s = self.settings
        n_images = x.shape[0]
        if z0 is not None and tuple(z0.shape) != (n_images, s.n_seed, self.latent):
            raise ValueError(f"z0 has shape {tuple(z0.shape)}, expected {(n_images, s.n_seed, self.latent)}")
        total = n_images * s.n_seed
        loss = torch.empty(total, dtype=self.dtype)
        nlp = torch.empty(total, dtype=self.dtype)
        const = self.latent * 0.5 * math.log(2 * math.pi)

        def keep(start, stop, final, zk):
            loss[start:stop] = final.cpu()
            nlp[start:stop] = (0.5 * zk.square().sum(1) + const).cpu()
            if progress is not None:
                progress(stop - start)

        batches = self._pair_batches(x, z0, generator)
        if s.workers == 1:
            for start, stop, zb, xb in batches:
                keep(start, stop, *self._run_pairs(zb, xb))
        else:
            self._run_in_workers(batches, keep)
        return SearchResult(loss.view(n_images, s.n_seed), nlp.view(n_images, s.n_seed))

    def _run_in_workers(self, batches, keep) -> None:
        """`workers` threads take batches as they come; at most 2 x workers batches are drawn ahead."""
        idle = queue.SimpleQueue()
        for search in self._worker_copies(self.settings.workers):
            idle.put(search)

        def task(start, stop, zb, xb):
            search = idle.get()
            try:
                return (start, stop, *search._run_pairs(zb, xb))
            finally:
                idle.put(search)

        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(self.settings.workers) as pool:
                in_flight = collections.deque()
                for batch in batches:
                    in_flight.append(pool.submit(task, *batch))
                    if len(in_flight) >= 2 * self.settings.workers:
                        keep(*in_flight.popleft().result())
                while in_flight:
                    keep(*in_flight.popleft().result())
        finally:
            torch.set_num_threads(threads_before)


def auto_pairs_per_batch(generator: nn.Module, device: torch.device) -> int:
    """Pairs per batch: on a CPU enough to amortise per-call overhead for small generators (at least 8,
    about 128 MiB of per-pair state); on a GPU as many as fit in about 30 % of the free memory."""
    per_pair = 4 * sum(p.numel() * p.element_size() for p in generator.parameters())  # params, 2 moments, grad
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(1, min(4096, 0.3 * free // max(per_pair, 1))))
    return int(max(8, min(256, (128 << 20) // max(per_pair, 1))))
