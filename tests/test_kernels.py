"""The fused CPU kernels against torch's own Adam, step by step."""

import pytest
import torch

from ganad.methods.adgan import kernels

BETAS, EPS = (0.5, 0.999), 1e-8


def torch_adam(p, grads, lr):
    """torch.optim.Adam on a copy of p with the given gradient at each step; the weights after each step."""
    p = p.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=BETAS, eps=EPS)
    after = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        after.append(p.detach().clone())
    return after


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-14), (torch.float32, 1e-6)])
def test_adam_steps_equal_torch_optim_adam(dtype, rtol):
    """Three pairs from shared trained values: step 1 reads neither p nor the moments, the last step
    writes no moments, and every step equals torch.optim.Adam's."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(5, 7, generator=gen, dtype=dtype)
    grads = torch.randn(4, 3, 5, 7, generator=gen, dtype=dtype)  # step, pair, ...
    p = torch.full((3, 5, 7), float("nan"), dtype=dtype)  # garbage that step 1 must not read
    m, v = torch.full_like(p, float("nan")), torch.full_like(p, float("nan"))
    expected = [torch_adam(start, grads[:, q], lr=0.1) for q in range(3)]
    for step in range(1, 5):
        m_before, v_before = m.clone(), v.clone()
        kernels.adam_(p, grads[step - 1].clone(), m, v, start, 0.1, BETAS, EPS, step, last=step == 4)
        for q in range(3):
            torch.testing.assert_close(p[q], expected[q][step - 1], rtol=rtol, atol=rtol)  # values are O(1)
    torch.testing.assert_close(m, m_before, rtol=0, atol=0)  # the last step left the moments alone
    torch.testing.assert_close(v, v_before, rtol=0, atol=0)


def first_layer_reference(w0, z0, ds, lr_w, lr_z):
    """Step by step with torch.optim.Adam on W and z: dz = W d, dW = z (outer) d; y = z_new @ W_new."""
    w = w0.clone().requires_grad_(True)
    z = z0.clone().requires_grad_(True)
    opt_w = torch.optim.Adam([w], lr=lr_w, betas=BETAS, eps=EPS)
    opt_z = torch.optim.Adam([z], lr=lr_z, betas=BETAS, eps=EPS)
    out = []
    for d in ds:
        w.grad, z.grad = torch.outer(z.detach(), d), w.detach() @ d
        opt_w.step()
        opt_z.step()
        out.append((w.detach().clone(), z.detach().clone(), z.detach() @ w.detach()))
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_first_layer_replayed_moments_equal_stored_ones(k, dtype, rtol):
    """No moments are stored for the first layer's weights: they are replayed from the history of z and d.
    Weights, latents and the next product equal torch.optim.Adam's at every step; the last step leaves
    the weights as they were (they feed only the product)."""
    gen = torch.Generator().manual_seed(1)
    rows, cols = 6, 37  # 37: not a multiple of any vector width
    start = torch.randn(rows, cols, generator=gen, dtype=dtype) * 0.3
    z0 = torch.randn(rows, generator=gen, dtype=dtype)
    ds = torch.randn(k, cols, generator=gen, dtype=dtype)
    expected = first_layer_reference(start, z0, ds, lr_w=0.05, lr_z=0.25)
    w = torch.full((rows, cols), float("nan"), dtype=dtype)
    z, zm, zv = z0.clone(), torch.zeros(rows, dtype=dtype), torch.zeros(rows, dtype=dtype)
    z_hist, d_hist = torch.empty(rows, k, dtype=dtype), torch.empty(k, cols, dtype=dtype)
    y = torch.empty(cols, dtype=dtype)
    for step in range(1, k + 1):
        d_hist[step - 1] = ds[step - 1]
        w_before = w.clone()
        kernels.first_layer_(w, start, z_hist, d_hist, z, zm, zv, y, 0.05, 0.25, BETAS, EPS, step, last=step == k)
        w_exp, z_exp, y_exp = expected[step - 1]
        torch.testing.assert_close(z, z_exp, rtol=rtol, atol=rtol)  # values are O(1)
        torch.testing.assert_close(y, y_exp, rtol=rtol, atol=rtol * y_exp.abs().max().item())
        if step < k or k == 1:
            torch.testing.assert_close(w, w_exp, rtol=rtol, atol=rtol)
        else:
            torch.testing.assert_close(w, w_before, rtol=0, atol=0, equal_nan=True)


def test_kernels_refuse_bad_input():
    a = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="shapes"):
        kernels.adam_(a, a.clone(), a.clone(), torch.zeros(2, 3, 5), a[0], 0.1, BETAS, EPS, 1, last=False)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.adam_(
            a.transpose(1, 2),
            a.transpose(1, 2),
            a.transpose(1, 2),
            a.transpose(1, 2),
            a[0].t(),
            0.1,
            BETAS,
            EPS,
            1,
            last=False,
        )
    with pytest.raises(TypeError, match="float32 or float64"):
        h = torch.zeros(2, 4, dtype=torch.float16)
        kernels.adam_(h, h, h, h, h[0], 0.1, BETAS, EPS, 1, last=False)
    w, z, y = torch.zeros(3, 4), torch.zeros(3), torch.zeros(4)
    with pytest.raises(ValueError, match="step 3"):  # the history holds two steps
        kernels.first_layer_(w, w, torch.zeros(3, 2), torch.zeros(2, 4), z, z, z, y, 0.1, 0.1, BETAS, EPS, 3, last=True)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        kernels.first_layer_(
            w, w, torch.zeros(3, 2), torch.zeros(2, 5), z, z, z, y, 0.1, 0.1, BETAS, EPS, 1, last=False
        )
