"""ceVAE's own maths: the square noise, the loss and its two ends (ce_factor 0 and 1), which images set
BatchNorm's statistics, the deterministic score, and a short training.

What every method shares (fit and separate, save/load, same seed, resume, NaN stop, params checks) is
tests/test_methods.py.
"""

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import distributions

from ganad.data.images import ImageSet
from ganad.errors import ParamsError
from ganad.methods.cevae import Config
from ganad.methods.cevae.model import CEVAE, MAX_SQUARES, Squares, draw_squares, erase_squares
from ganad.methods.common.training_run import TrainingRun
from ganad.runtime.device import seed_everything
from ganad.schema import parse

from conftest import inverted_blob_sets

CPU = torch.device("cpu")


def make(**kw):
    seed_everything(0)
    base = dict(latent_dim=8, width=8, batch_size=32, lr=2e-3, threads=1)
    return CEVAE(parse(Config, {**base, **kw}, "methods.cevae"), 1, CPU)


def batch(n=6, channels=1, seed=1, low=-0.8, high=0.6):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, channels, 32, 32, generator=g)


def painted(x, squares):
    """`x` with the squares painted in, slot by slot with plain slicing: written out independently."""
    out = x.clone()
    for i in range(len(x)):
        s = int(squares.side[i])
        for k in range(int(squares.count[i])):
            t, l = int(squares.top[i, k]), int(squares.left[i, k])
            out[i, :, t : t + s, l : l + s] = squares.fill[i, k]
    return out


# --- the square noise ------------------------------------------------------------------------------


def test_square_draws_stay_in_mood_ranges_and_cover_them():
    x = batch(n=2000)
    torch.manual_seed(0)
    sq = draw_squares(x)
    assert sq.count.min() == 0 and sq.count.max() == MAX_SQUARES  # U{0..3}, both ends reached
    assert sq.side.min() == 0 and sq.side.max() == 16  # U{0..size/2}
    assert set(sq.count.tolist()) == {0, 1, 2, 3} and len(set(sq.side.tolist())) == 17
    assert (sq.top >= 0).all() and (sq.left >= 0).all()
    assert (sq.top + sq.side[:, None] <= 32).all() and (sq.left + sq.side[:, None] <= 32).all()  # inside
    assert sq.fill.min() >= x.min() and sq.fill.max() <= x.max()  # U[min, max] of the batch
    assert sq.fill.min() < x.min() + 0.01 and sq.fill.max() > x.max() - 0.01


def test_erasing_paints_each_square_over_all_channels_and_leaves_the_rest():
    x = batch(n=3, channels=3)
    sq = Squares(
        count=torch.tensor([0, 2, 3]),
        side=torch.tensor([5, 4, 6]),
        top=torch.tensor([[0, 0, 0], [1, 3, 20], [10, 12, 26]]),
        left=torch.tensor([[0, 0, 0], [2, 4, 20], [10, 13, 26]]),
        fill=torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-0.1, -0.2, -0.3]]),
    )
    out = erase_squares(x, sq)
    torch.testing.assert_close(out, painted(x, sq), rtol=0, atol=0)
    assert torch.equal(out[0], x[0])  # no squares
    assert (out[1, :, 3:7, 4:8] == 0.5).all() and out[1, 0, 1, 2] == 0.4  # the second covers the first
    assert (out[1, :, 20:24, 20:24] == x[1, :, 20:24, 20:24]).all()  # slot 3 unused (count 2)
    assert (out[2, :, 26:32, 26:32] == -0.3).all()  # a square at the border


def test_the_noise_leaves_clean_pixels_untouched_and_repeats_under_a_seed():
    x = batch(n=64)
    torch.manual_seed(7)
    sq = draw_squares(x)
    out = erase_squares(x, sq)
    torch.testing.assert_close(out, painted(x, sq), rtol=0, atol=0)
    torch.manual_seed(7)
    assert torch.equal(erase_squares(x, draw_squares(x)), out)
    torch.manual_seed(8)
    assert not torch.equal(erase_squares(x, draw_squares(x)), out)
    assert out.min() >= x.min() and out.max() <= x.max()


# --- the loss --------------------------------------------------------------------------------------


def expected_step(net, x, cfg):
    """The step's losses from the definitions, on a copy of the network in train mode, with the step's
    random draws taken in the step's order (posterior noise, then squares)."""
    mu, logvar = net.encoder(x).chunk(2, dim=1)
    terms = {}
    if cfg.ce_factor < 1:
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        terms["rec"] = (net.decoder(z) - x).abs().mean(dim=(1, 2, 3)).mean()
        posterior = distributions.Normal(mu, torch.exp(0.5 * logvar))
        terms["kl"] = distributions.kl_divergence(posterior, distributions.Normal(0.0, 1.0)).mean(dim=(1, 2, 3)).mean()
    if cfg.ce_factor > 0:
        corrupted = painted(x, draw_squares(x))
        mu_ce = net.encoder(corrupted).chunk(2, dim=1)[0]
        terms["rec_ce"] = (net.decoder(mu_ce) - x).abs().mean(dim=(1, 2, 3)).mean()  # against the clean x
    vae = cfg.beta * terms["kl"] + cfg.theta * terms["rec"] if cfg.ce_factor < 1 else 0.0
    ce = terms["rec_ce"] if cfg.ce_factor > 0 else 0.0
    return (1 - cfg.ce_factor) * vae + cfg.ce_factor * ce, terms


@pytest.mark.parametrize(
    "ce_factor, beta, theta", [(0.5, 0.01, 1.0), (0.3, 0.5, 2.0), (0.0, 0.2, 1.5), (1.0, 0.2, 1.5)]
)
def test_the_step_minimises_the_hand_computed_loss(ce_factor, beta, theta):
    m = make(ce_factor=ce_factor, beta=beta, theta=theta)
    m._mode(True)
    x = batch()
    net = copy.deepcopy(m.net)
    torch.manual_seed(3)
    want, terms = expected_step(net, x, m.config)
    want_grads = torch.autograd.grad(want, list(net.parameters()))
    torch.manual_seed(3)
    got = m.train_step(m._input(x))
    assert got["train_loss"] == pytest.approx(want.item(), rel=1e-5)
    assert set(got) == {"train_loss"} | {f"train_{k}" for k in terms}  # a branch of weight 0 is not run
    for key, value in terms.items():
        assert got[f"train_{key}"] == pytest.approx(value.item(), rel=1e-5)
    for p, g in zip(m.net.parameters(), want_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-7)


def test_ce_factor_0_is_the_vae_branch_alone_and_1_the_context_encoder_alone():
    x = batch()
    vae, ce = make(ce_factor=0.0, beta=0.3, theta=2.0), make(ce_factor=1.0, beta=0.3, theta=2.0)
    vae._mode(True)
    ce._mode(True)
    torch.manual_seed(5)
    v = vae.train_step(x)
    after_vae = torch.get_rng_state()
    assert v["train_loss"] == pytest.approx(0.3 * v["train_kl"] + 2.0 * v["train_rec"], rel=1e-6)
    torch.manual_seed(5)
    torch.randn(len(x), 8, 1, 1)  # the VAE step draws its posterior noise only: no squares
    assert torch.equal(torch.get_rng_state(), after_vae)
    c = ce.train_step(x)
    assert c["train_loss"] == pytest.approx(c["train_rec_ce"], rel=1e-6) and "train_kl" not in c


def test_batchnorm_running_statistics_come_from_the_clean_images():
    """Scoring (eval mode) uses BatchNorm's running statistics: the VAE branch's clean batches set them;
    the CE pass, on corrupted images, leaves them, unless it is the only pass (ce_factor 1)."""
    x = batch()
    for ce_factor in (0.5, 1.0):
        m = make(ce_factor=ce_factor)
        m._mode(True)
        net = copy.deepcopy(m.net)
        torch.manual_seed(2)
        with torch.no_grad():
            if ce_factor < 1:  # the VAE pass on the clean batch
                mu, logvar = net.encoder(x).chunk(2, dim=1)
                net.decoder(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
            else:  # the CE pass on the corrupted batch
                mu_ce = net.encoder(painted(x, draw_squares(x))).chunk(2, dim=1)[0]
                net.decoder(mu_ce)
        torch.manual_seed(2)
        m.train_step(x)
        for (name, got), want in zip(m.net.named_buffers(), net.buffers()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7, msg=f"{ce_factor}: {name}")


# --- the score -------------------------------------------------------------------------------------


def test_the_score_is_deterministic_per_image_and_matches_its_definition():
    easy = inverted_blob_sets(n_train=64, n_test=16)
    m = make(beta=0.25, theta=1.5, epochs=1)
    m.fit(easy[0], easy[1])
    test = easy[2]
    first, again = m.score(test), m.score(test)
    np.testing.assert_array_equal(first, again)
    # another batch composition: reversed order, batches of 5
    m.config.score_batch_size = 5
    order = np.arange(len(test))[::-1].copy()
    shuffled = m.score(ImageSet(test.x[order], test.labels[order], test.index[order]))
    np.testing.assert_allclose(shuffled[::-1], first, rtol=1e-5)
    # the definition: beta * KL + theta * L1 of the clean image decoded from z = mu, in eval mode
    net = copy.deepcopy(m.net).eval()
    with torch.no_grad():
        mu, logvar = net.encoder(test.x).chunk(2, dim=1)
        kl = distributions.kl_divergence(
            distributions.Normal(mu, torch.exp(0.5 * logvar)), distributions.Normal(0.0, 1.0)
        ).mean(dim=(1, 2, 3))
        rec = (net.decoder(mu) - test.x).abs().mean(dim=(1, 2, 3))
    np.testing.assert_allclose(first, (0.25 * kl + 1.5 * rec).double().numpy(), rtol=1e-5, atol=1e-7)
    for score, want in (("rec", rec), ("kl", kl)):
        m.config.score = score
        # atol: near 0, KL's two formulas differ by rounding (1 + logvar - exp(logvar) cancels)
        np.testing.assert_allclose(m.score(test), want.double().numpy(), rtol=1e-5, atol=1e-7)


# --- training --------------------------------------------------------------------------------------


def test_a_short_training_learns_to_reconstruct_and_separates_inverted_images():
    train, val, test = inverted_blob_sets()
    m = make(epochs=4, score="rec")
    before = m.score(val).mean()
    run = TrainingRun(None, "cevae")
    m.fit(train, val, run)
    assert m.score(val).mean() < 0.5 * before
    assert run.history[-1]["train_rec_ce"] < run.history[0]["train_rec_ce"]  # it learns to fill the squares
    m.config.score = "combined"
    assert roc_auc_score(test.labels, m.score(test)) > 0.95


# --- params ----------------------------------------------------------------------------------------


def test_params_bounds():
    for value in (0, 0.0, 0.25, 1, 1.0):
        assert parse(Config, {"ce_factor": value}, "methods.cevae").ce_factor == value
    for key, value in (("ce_factor", 1.01), ("ce_factor", -0.1), ("theta", 0.0), ("beta", -0.01), ("score", "elbo")):
        with pytest.raises(ParamsError, match=rf"methods\.cevae\.{key} = "):
            parse(Config, {key: value}, "methods.cevae")
    assert parse(Config, {"beta": 0}, "methods.cevae").beta == 0
