"""Fused CPU kernels for the latent search's per-pair Adam steps, compiled with numba.

The search (search.py) gives every (image, seed) pair a private copy of the generator's
weights with Adam state. On a CPU, moving that state between memory and the cores is
most of the cost, so these kernels touch each element once per step and skip what a
step does not need:

- at the first step the old weights are the shared trained values and both moments are
  zero: none of them is read (nor first copied and zeroed into the pair's buffers);
- at the last step the moments are not written, since no step follows;
- the first layer (a product with the latent vector z, 60 % of the weights) stores no
  moments and no gradient at all. Its weight gradient at step s is the outer product
  z_(s-1) (outer) d_s of the latent vector and the layer's output gradient, so the
  kernel keeps those two vectors per step and replays both moments element by element
  from them, with the same recurrence and the same rounding as stored moments. A
  weight row computes its share of dz = W d, updates its latent element, takes its
  Adam step and adds its share of the next product z_new @ W_new while in cache; at
  the last step the new weights feed only that product and are not written.

The arithmetic is torch.optim.Adam's (betas, eps, bias corrections computed in double
precision; no weight decay), element by element in the tensors' dtype. Only dz = W d is
summed in a different order than a BLAS product, so results equal the torch
implementation to rounding.

Numba checks no bounds: the wrappers below check every shape before a kernel runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

FIRST, MIDDLE, LAST = 0, 1, 2


def _mode(step: int, last: bool) -> int:
    return FIRST if step == 1 else LAST if last else MIDDLE


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
                p[q, i], m[q, i], v[q, i] = _adam_element(
                    start[i], g[q, i], zero, zero, ss, b1, ob1, b2, ob2, bc2s, eps
                )
        elif mode == MIDDLE:
            for i in range(p.shape[1]):
                p[q, i], m[q, i], v[q, i] = _adam_element(
                    p[q, i], g[q, i], m[q, i], v[q, i], ss, b1, ob1, b2, ob2, bc2s, eps
                )
        else:
            for i in range(p.shape[1]):
                p[q, i] = _adam_element(p[q, i], g[q, i], m[q, i], v[q, i], ss, b1, ob1, b2, ob2, bc2s, eps)[0]


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _dot(a, b):
    """a . b, summed in whatever order vectorises."""
    total = a.dtype.type(0)
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    """Adam's update of element c at step `steps`, its moments rebuilt from the gradients
    z_r[s] * d_hist[s, c] of every step so far, in the order stored moments would have seen them."""
    m = z_r.dtype.type(0)
    v = z_r.dtype.type(0)
    for s in range(steps):
        g = z_r[s] * d_hist[s, c]
        m = b1 * m + ob1 * g
        v = b2 * v + ob2 * (g * g)
    return ss * m / (np.sqrt(v) / bc2s + eps)


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _row_step_from(w, old, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    for c in range(w.shape[0]):
        p = old[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
        w[c] = p
        y[c] += z_new * p


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _row_step(w, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    # w is read and written in place: one array, so the loop vectorises without an overlap check
    for c in range(w.shape[0]):
        p = w[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
        w[c] = p
        y[c] += z_new * p


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _row_product(w, z_r, d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps):
    for c in range(w.shape[0]):
        y[c] += z_new * (w[c] - _replayed_update(c, z_r, d_hist, steps, ss, b1, ob1, b2, ob2, bc2s, eps))


_FIRST_LAYER_KERNELS: dict = {}


def _first_layer_kernel(steps: int):
    """The first-layer kernel of step `steps`, compiled once per step number (and cached on disk):
    with the step count a constant, the moment replay unrolls and stays in registers."""
    if steps not in _FIRST_LAYER_KERNELS:

        @numba.njit(nogil=True, cache=True, error_model="numpy")
        def first_layer_rows(
            w, start, z_hist, d_hist, z, zm, zv, y, mode, ss, b1, ob1, b2, ob2, bc2s, eps, z_ss, z_bc2s
        ):
            zero = w.dtype.type(0)
            d = d_hist[steps - 1]
            y[:] = zero
            for r in range(w.shape[0]):
                old = start[r] if mode == FIRST else w[r]
                z_old = z[r]
                z_hist[r, steps - 1] = z_old
                z_m = zero if mode == FIRST else zm[r]
                z_v = zero if mode == FIRST else zv[r]
                z_new, zm[r], zv[r] = _adam_element(z_old, _dot(old, d), z_m, z_v, z_ss, b1, ob1, b2, ob2, z_bc2s, eps)
                z[r] = z_new
                if mode == FIRST:
                    _row_step_from(w[r], start[r], z_hist[r], d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
                elif mode == MIDDLE:
                    _row_step(w[r], z_hist[r], d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)
                else:  # the new weights feed the final product only
                    _row_product(w[r], z_hist[r], d_hist, y, z_new, steps, ss, b1, ob1, b2, ob2, bc2s, eps)

        _FIRST_LAYER_KERNELS[steps] = first_layer_rows
    return _FIRST_LAYER_KERNELS[steps]


# --- torch-facing wrappers -----------------------------------------------------------------------


def _constants(dtype, lr: float, betas, eps: float, step: int):
    """Adam's scalars in the tensors' dtype: step size lr / (1 - b1^t) and sqrt(1 - b2^t) in double first."""
    cast = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
    b1, b2 = betas
    return (
        cast(lr / (1 - b1**step)),
        cast(b1),
        cast(1 - b1),
        cast(b2),
        cast(1 - b2),
        cast(math.sqrt(1 - b2**step)),
        cast(eps),
    )


def _arrays(*tensors: torch.Tensor) -> list[np.ndarray]:
    dtype = tensors[0].dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"the search kernels run in float32 or float64, not {dtype}")
    for t in tensors:
        if t.device.type != "cpu" or t.dtype != dtype or not t.is_contiguous():
            raise ValueError("the search kernels need contiguous CPU tensors of one dtype")
    return [t.numpy() for t in tensors]


def adam_(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    start: torch.Tensor,
    lr: float,
    betas,
    eps: float,
    step: int,
    last: bool,
) -> None:
    """Adam step `step` (1-based) in place on per-pair tensors p, g, m, v (pairs, *start.shape).

    At step 1 the old values are `start` (shared by all pairs) and the moments zero, none of them
    read; at the `last` step m and v are not written.
    """
    if not (p.shape == g.shape == m.shape == v.shape and p.numel() % max(start.numel(), 1) == 0):
        raise ValueError(
            f"adam_: shapes {tuple(p.shape)}, {tuple(g.shape)}, {tuple(m.shape)}, {tuple(v.shape)} "
            f"must be equal and hold whole copies of {tuple(start.shape)}"
        )
    pairs = p.numel() // max(start.numel(), 1)
    p_, g_, m_, v_, start_ = _arrays(p, g, m, v, start)
    _adam_rows(
        *(a.reshape(pairs, -1) for a in (p_, g_, m_, v_)),
        start_.reshape(-1),
        _mode(step, last),
        *_constants(p.dtype, lr, betas, eps, step),
    )


def first_layer_(
    w: torch.Tensor,
    start: torch.Tensor,
    z_hist: torch.Tensor,
    d_hist: torch.Tensor,
    z: torch.Tensor,
    zm: torch.Tensor,
    zv: torch.Tensor,
    y: torch.Tensor,
    lr_w: float,
    lr_z: float,
    betas,
    eps: float,
    step: int,
    last: bool,
) -> None:
    """Adam step `step` (1-based) on one pair's first layer (see the module doc).

    w, start (latent, cols): the pair's weights (written unless `last`) and the trained ones;
    z, zm, zv (latent,): its latent vector and moments; z_hist (latent, k): z before each step
    (column step - 1 is written here); d_hist (k, cols): the output gradient of each step so far
    (row step - 1 is this step's); y (cols,): receives z_new @ w_new.
    """
    rows, cols = start.shape
    if not (
        w.shape == start.shape
        and z.shape == zm.shape == zv.shape == (rows,)
        and y.shape == (cols,)
        and z_hist.dim() == 2
        and z_hist.shape[0] == rows
        and d_hist.dim() == 2
        and d_hist.shape[1] == cols
        and 1 <= step <= min(z_hist.shape[1], d_hist.shape[0])
    ):
        raise ValueError(
            f"first_layer_: inconsistent shapes w {tuple(w.shape)}, start {tuple(start.shape)}, "
            f"z {tuple(z.shape)}, z_hist {tuple(z_hist.shape)}, d_hist {tuple(d_hist.shape)}, "
            f"y {tuple(y.shape)} at step {step}"
        )
    w_c = _constants(w.dtype, lr_w, betas, eps, step)
    z_c = _constants(w.dtype, lr_z, betas, eps, step)
    _first_layer_kernel(step)(*_arrays(w, start, z_hist, d_hist, z, zm, zv, y), _mode(step, last), *w_c, z_c[0], z_c[5])
