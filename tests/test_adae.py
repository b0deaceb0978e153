"""ADAE's own maths: losses, GAIA learning rates, who learns from what, the score, best_val, min_steps.

What every method shares (fit and separate, save/load, same seed, resume, NaN stop, params checks) is
tests/test_methods.py.
"""

import copy
import re

import numpy as np
import pytest
import torch

from ganad import store
from ganad.checks import build_config
from ganad.device import seed_everything
from ganad.methods.adae import Config as ADAEConfig
from ganad.methods.adae.model import ADAE
from ganad.training import TrainingDiverged, TrainingRun
from conftest import inverted_blob_sets

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets: a second thread only adds synchronisation, which on a busy machine costs seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(epochs=2, **kw):
    seed_everything(0)
    base = dict(latent_dim=8, width=8, epochs=epochs, batch_size=32, lr=2e-3, threads=1)
    return ADAE(ADAEConfig(**{**base, **kw}), 1, CPU)


def batch(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 32, 32, generator=g) * 2 - 1


@pytest.fixture
def easy():
    """Normal: smooth blobs; anomalous: the same blobs inverted (the contract test's easy set)."""
    return inverted_blob_sets()


def mae(a, b):
    """Mean absolute error of each image, then the batch mean: written out independently."""
    return torch.stack([(ai - bi).abs().mean() for ai, bi in zip(a, b)]).mean()


def reference(G, D, x):
    """The paper's two losses, each on its own graph, as plain torch code."""
    fake = G(x)
    loss_d = mae(x, D(x)) - mae(fake.detach(), D(fake.detach()))
    loss_g = mae(x, fake) + mae(fake, D(fake))
    return loss_d, loss_g


def grads(net):
    return [p.grad.detach().clone() for p in net.parameters()]


def params(net):
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("balance", [True, False])
def test_losses_and_balanced_learning_rates_match_hand_computed(balance):
    m = make(lr=1e-3, slope=20.0, balance=balance)
    m._mode(True)  # what the epoch loop does before the steps
    x = batch()
    G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)  # train mode: outputs use batch statistics
    with torch.no_grad():
        fake = G(x)
        real_rec, fake_rec, gen_rec = mae(x, D(x)), mae(fake, D(fake)), mae(x, fake)
    out = m.train_step(m._input(x))
    torch.testing.assert_close(out["real_rec"], real_rec.item(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["fake_rec"], fake_rec.item(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["gen_rec"], gen_rec.item(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_d"], (real_rec - fake_rec).item(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss_g"], (gen_rec + fake_rec).item(), rtol=1e-5, atol=1e-6)
    r = real_rec - fake_rec
    want_d = 1e-3 * torch.sigmoid(20.0 * r).item() if balance else 1e-3
    want_g = 1e-3 * torch.sigmoid(-20.0 * r).item() if balance else 1e-3
    torch.testing.assert_close(out["lr_d"], want_d, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(out["lr_g"], want_g, rtol=1e-5, atol=0.0)
    assert m.opt_d.param_groups[0]["lr"] == out["lr_d"] and m.opt_g.param_groups[0]["lr"] == out["lr_g"]
    if balance:  # the lrs differ unless r is exactly 0, and always sum to lr
        assert out["lr_d"] != out["lr_g"]
        assert out["lr_d"] + out["lr_g"] == pytest.approx(1e-3)


@pytest.mark.parametrize("fast", [True, False], ids=["channels_last+fused", "contiguous+loop"])
def test_each_net_learns_only_from_its_own_loss(fast):
    """D's gradient is dL_D/dD (G(X) detached, no leak from L_G), G's is dL_G/dG, over two steps."""
    kw = dict(channels_last=True, adam="fused") if fast else dict(channels_last=False, adam="loop")
    m = make(**kw)
    m._mode(True)
    for step in range(2):
        x = batch(seed=step)
        G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)
        loss_d, loss_g = reference(G, D, x)
        ref_d = torch.autograd.grad(loss_d, list(D.parameters()))
        ref_g = torch.autograd.grad(loss_g, list(G.parameters()))
        before_g, before_d = params(m.G), params(m.D)
        m.train_step(m._input(x))
        for got, want in zip(grads(m.D), ref_d):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
        for got, want in zip(grads(m.G), ref_g):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
        # both nets moved, and no parameter received a gradient from the other's loss only
        assert all(not torch.equal(a, b) for a, b in zip(before_d, params(m.D)) if a.numel() > 1)
        assert all(not torch.equal(a, b) for a, b in zip(before_g, params(m.G)) if a.numel() > 1)


def test_d_update_equals_adam_step_on_l_d_alone():
    """The weights after one step equal a plain Adam step on each loss alone, at the balanced lrs."""
    m = make(channels_last=False, adam="loop", beta1=0.5, beta2=0.999)
    m._mode(True)
    x = batch()
    G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)
    loss_d, loss_g = reference(G, D, x)
    out = m.train_step(m._input(x))
    opt_d = torch.optim.Adam(D.parameters(), lr=out["lr_d"], betas=(0.5, 0.999), foreach=False)
    opt_g = torch.optim.Adam(G.parameters(), lr=out["lr_g"], betas=(0.5, 0.999), foreach=False)
    d_grads = torch.autograd.grad(loss_d, list(D.parameters()), retain_graph=True)
    g_grads = torch.autograd.grad(loss_g, list(G.parameters()))
    for p, g in zip(D.parameters(), d_grads):
        p.grad = g
    for p, g in zip(G.parameters(), g_grads):
        p.grad = g
    opt_d.step()
    opt_g.step()
    for a, b in zip(params(D), params(m.D)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    for a, b in zip(params(G), params(m.G)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


def test_short_training_logs_adae_terms_and_reduces_reconstruction_errors(easy):
    train, val, _ = easy
    m = make(epochs=4, lr=5e-4, batch_size=16)
    run = TrainingRun(None, "t")
    m.fit(train, val, run)
    assert [h["epoch"] for h in run.history] == list(range(4))
    keys = {"loss_d", "loss_g", "lr_d", "lr_g", "real_rec", "fake_rec", "gen_rec", "val_score"}
    assert set(run.history[-1]) == keys | {"epoch"}
    for h in run.history:  # the logged losses are the epoch means of the step terms
        assert h["loss_d"] == pytest.approx(h["real_rec"] - h["fake_rec"], rel=1e-9, abs=1e-12)
        assert h["loss_g"] == pytest.approx(h["gen_rec"] + h["fake_rec"], rel=1e-9, abs=1e-12)
        assert h["lr_d"] + h["lr_g"] == pytest.approx(5e-4)
    assert run.history[-1]["real_rec"] < run.history[0]["real_rec"]
    assert run.history[-1]["val_score"] < run.history[0]["val_score"]


def test_score_is_l2_norm_of_x_minus_d_of_g_of_x_in_eval_mode(easy):
    _, _, test = easy
    m = make()
    m._mode(True)
    m.train_step(m._input(test.x[:32]))  # move BatchNorm running stats away from their init
    G, D = copy.deepcopy(m.G).eval(), copy.deepcopy(m.D).eval()
    with torch.no_grad():
        want = torch.stack([torch.sqrt(((x - y) ** 2).sum()) for x, y in zip(test.x, D(G(test.x)))])
    np.testing.assert_allclose(m.score(test), want.numpy(), rtol=1e-5)
    g, dg = m.reconstructions(test.x[:5])
    assert g.shape == dg.shape == (5, 1, 32, 32)
    np.testing.assert_allclose(dg, D(G(test.x[:5])).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert m.G.training is False and m.D.training is False


def test_select_best_val_keeps_the_epoch_with_the_lowest_normal_validation_score(easy):
    train, val, _ = easy
    m = make(epochs=4, lr=5e-3, select="best_val")  # a high lr, so that epochs differ a lot
    run = TrainingRun(None, "t")
    m.fit(train, val, run)
    val_scores = [h["val_score"] for h in run.history]
    best = int(np.argmin(val_scores))
    assert m.selected() == {"best_epoch": best, "best_val_score": val_scores[best]}
    assert float(m.score(val).mean()) == pytest.approx(val_scores[best], rel=1e-6)
    last = make(epochs=4, lr=5e-3)
    last.fit(train, val, TrainingRun(None, "t"))
    assert last.selected() == {}
    assert float(last.score(val).mean()) == pytest.approx(val_scores[-1], rel=1e-6)


def test_a_nan_after_a_checkpoint_leaves_that_checkpoint_as_it_was(easy, tmp_path):
    """The contract test covers a NaN before anything was saved; here one comes after two good epochs."""
    train, val, _ = easy
    ck = tmp_path / "ck.safetensors"
    make(epochs=2).fit(train, val, TrainingRun(ck, "fp"))
    saved = ck.read_bytes()
    train.x[:] = float("nan")  # every batch of epoch 2 is poisoned: step 0 diverges
    with pytest.raises(TrainingDiverged, match=r"at epoch 2, step 0; the last good checkpoint stays at "
                       + re.escape(f"'{ck}'")):
        make(epochs=4).fit(train, val, TrainingRun(ck, "fp"))
    assert ck.read_bytes() == saved
    state = store.load(ck)
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [0, 1]
    assert all(torch.isfinite(v).all() for net in state["state"]["nets"].values() for v in net.values()
               if v.is_floating_point())


def test_min_steps_raises_epochs_for_small_sets(easy):
    train, val, _ = easy  # 256 images, batch 32: 8 steps an epoch
    run = TrainingRun(None, "t")
    make(epochs=1, min_steps=20).fit(train, val, run)
    assert len(run.history) == 3


def test_default_config_is_the_papers():
    cfg = build_config(ADAEConfig, {}, "methods.adae")
    assert (cfg.latent_dim, cfg.width, cfg.epochs, cfg.batch_size, cfg.lr, cfg.beta1) == (32, 64, 100, 64, 1e-5, 0.5)
    assert cfg.balance and cfg.slope == 20.0 and cfg.min_steps == 0 and cfg.select == "last"
