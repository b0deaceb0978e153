"""Fused CPU kernels for the latent search's per-pair Adam steps, compiled with numba.

The search (search.py) keeps, for every (image, seed) pair, a private copy of the
generator's weights with two Adam moments. On a CPU, moving that state between memory
and the cores is most of the cost, so these kernels touch each element once per step
and skip what a step does not need:

- `FIRST` step: the old weights are the shared trained values and both moments are
  zero, so they are not read (nor first copied and zeroed into the pair's buffers);
- `LAST` step: the moments are not written, since no step follows;
- the first layer (a product with z) never materialises its weight gradient z (outer) d:
  each weight row computes its share of dz = W d, updates z's element, recomputes its
  gradient row on the fly, takes the Adam step and adds its share of the next
  product z_new @ W_new, while the row is in L1. At the `LAST` step the new weights
  feed only that product, so they are not written back.

The arithmetic is torch.optim.Adam's (betas, eps, bias corrections; no weight decay),
element by element in the tensor's dtype, with the bias corrections computed in double
precision as torch's fused kernel does. Summation order in dz differs from a BLAS
matrix-vector product, so results equal the torch path to rounding, not bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

FIRST, MIDDLE, LAST = 0, 1, 2
_LANES = 16  # independent partial sums in dz, so the dot product vectorises without reassociation


def mode(step: int, k: int) -> int:
    """The kernel mode of step `step` (1-based) of k."""
    return FIRST if step == 1 else LAST if step == k else MIDDLE


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _adam_element(p, g, m, v, ss, b1, ob1, b2, ob2, bc2s, eps):
    m = b1 * m + ob1 * g
    v = b2 * v + ob2 * (g * g)
    return p - ss * m / (np.sqrt(v) / bc2s + eps), m, v


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _adam_rows(p, g, m, v, start, mode, ss, b1, ob1, b2, ob2, bc2s, eps):
    """p, g, m, v: (pairs, n); start: (n,) the trained values, read at the FIRST step instead of p."""
    zero = p.dtype.type(0)
    for q in range(p.shape[0]):
        if mode == FIRST:
            for i in range(p.shape[1]):
                p[q, i], m[q, i], v[q, i] = _adam_element(start[i], g[q, i], zero, zero, ss, b1, ob1, b2, ob2,
                                                          bc2s, eps)
        elif mode == MIDDLE:
            for i in range(p.shape[1]):
                p[q, i], m[q, i], v[q, i] = _adam_element(p[q, i], g[q, i], m[q, i], v[q, i], ss, b1, ob1, b2,
                                                          ob2, bc2s, eps)
        else:
            for i in range(p.shape[1]):
                p[q, i] = _adam_element(p[q, i], g[q, i], m[q, i], v[q, i], ss, b1, ob1, b2, ob2, bc2s, eps)[0]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _dot(a, b):
    """a . b, summed in any order so that it vectorises."""
    total = a.dtype.type(0)
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


def _first_layer_kernel(steps: int):
    """The first-layer kernel for step `steps`, compiled once per step number so that the moment
    replay over the steps so far unrolls and every element's work stays in registers."""
    if steps not in _FIRST_LAYER_KERNELS:
        @numba.njit(nogil=True, error_model="numpy")
        def first_layer_rows(w, start, z_hist, d_hist, z, zm, zv, y, accumulate, mode,
                             ss, b1, ob1, b2, ob2, bc2s, eps, z_ss, z_bc2s):
            rows, cols = w.shape
            zero = w.dtype.type(0)
            d = d_hist[steps - 1]
            if not accumulate:
                y[:] = zero
            for r in range(rows):
                old = start[r] if mode == FIRST else w[r]
                z_old = z[r]
                z_hist[r, steps - 1] = z_old
                z_m = zero if mode == FIRST else zm[r]
                z_v = zero if mode == FIRST else zv[r]
                z_new, zm[r], zv[r] = _adam_element(z_old, _dot(old, d), z_m, z_v, z_ss, b1, ob1, b2, ob2,
                                                    z_bc2s, eps)
                z[r] = z_new
                z_r = z_hist[r]
                if mode == FIRST:
                    _replay_step_from_(w[r], start[r], z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
                elif mode == MIDDLE:
                    _replay_step_(w[r], z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
                else:  # the new weights feed the final product only
                    _replay_product(w[r], z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
        _FIRST_LAYER_KERNELS[steps] = first_layer_rows
    return _FIRST_LAYER_KERNELS[steps]


_FIRST_LAYER_KERNELS: dict = {}


@numba.njit(nogil=True, error_model="numpy", inline="always")
def _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    """The Adam update of element c at step `steps`: the moments rebuilt from the rank-1 gradients
    z_s (outer) d_s of every step so far, in the order a stored moment would have seen them."""
    m = z_r.dtype.type(0)
    v = z_r.dtype.type(0)
    for s in range(steps):
        g = z_r[s] * d_hist[s, c]
        m = b1 * m + ob1 * g
        v = b2 * v + ob2 * (g * g)
    return ss * m / (np.sqrt(v) / bc2s + eps)


@numba.njit(nogil=True, error_model="numpy", inline="always")
def _replay_step_from_(w, old, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    for c in range(w.shape[0]):
        p = old[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
        w[c] = p
        y[c] += z_new * p


@numba.njit(nogil=True, error_model="numpy", inline="always")
def _replay_step_(w, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    for c in range(w.shape[0]):
        p = w[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
        w[c] = p
        y[c] += z_new * p


@numba.njit(nogil=True, error_model="numpy", inline="always")
def _replay_product(w, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    for c in range(w.shape[0]):
        y[c] += z_new * (w[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps))


def _constants(dtype, lr: float, betas, eps: float, step: int):
    """Adam's scalars in the tensors' dtype: step size lr / (1 - b1^t) and sqrt(1 - b2^t) in double first."""
    cast = np.float32 if dtype == torch.float32 else np.float64
    b1, b2 = betas
    return (cast(lr / (1 - b1 ** step)), cast(b1), cast(1 - b1), cast(b2), cast(1 - b2),
            cast(math.sqrt(1 - b2 ** step)), cast(eps))


def _array(t: torch.Tensor) -> np.ndarray:
    if not t.is_contiguous():
        raise ValueError("the search kernels need contiguous tensors")
    return t.numpy()


def adam_(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, start: torch.Tensor, mode: int,
          lr: float, betas, eps: float, step: int) -> None:
    """Adam step `step` in place on per-pair tensors p, g, m, v (pairs, ...) whose old values at the
    FIRST step are `start` (one pair's shape, shared); m and v are neither read then nor written at LAST."""
    pairs = p.numel() // start.numel()
    flat = [_array(t).reshape(pairs, -1) for t in (p, g, m, v)]
    _adam_rows(*flat, _array(start).reshape(-1), mode, *_constants(p.dtype, lr, betas, eps, step))


def first_layer_(w: torch.Tensor, start: torch.Tensor, z_hist: torch.Tensor, d_hist: torch.Tensor, step: int,
                 z: torch.Tensor, zm: torch.Tensor, zv: torch.Tensor, y: torch.Tensor, accumulate: bool, mode: int,
                 lr_w: float, lr_z: float, betas, eps: float) -> None:
    """Step `step` (1-based) on one pair's first-layer rows, see `_first_layer_rows` and the module doc."""
    w_c = _constants(w.dtype, lr_w, betas, eps, step)
    z_c = _constants(w.dtype, lr_z, betas, eps, step)
    _first_layer_kernel(step)(*(_array(t) for t in (w, start, z_hist, d_hist, z, zm, zv, y)), accumulate, mode,
                              *w_c, z_c[0], z_c[5])
