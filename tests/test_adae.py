"""ADAE's own maths: losses, GAIA learning rates, who learns from what, the score, best_val, min_steps.

What every method shares (fit and separate, save/load, same seed, resume, NaN stop, params checks) is
tests/test_methods.py.
"""

import copy
import re

import numpy as np
import pytest
import torch

from ganad.methods.adae import Config as ADAEConfig
from ganad.methods.adae.model import ADAE
from ganad.methods.common.training_run import TrainingDiverged, TrainingRun
from ganad.runtime import store
from ganad.runtime.device import seed_everything
from ganad.schema import parse

from conftest import inverted_blob_sets

CPU = torch.device("cpu")


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


def grads(net):
    return [p.grad.detach().clone() for p in net.parameters()]


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def reference(G, D, x, w=1.0, joint=False, gen_weight=1.0):
    """The paper's two losses, D's fake term weighted by w and G's reconstruction by gen_weight, each on its own
    graph, as plain torch code."""
    fake = G(x)
    if joint:
        out = D(torch.cat([x, fake.detach()]))
        d_real, d_fake = out[: len(x)], out[len(x) :]
    else:
        d_real, d_fake = D(x), D(fake.detach())
    loss_d = mae(x, d_real) - w * mae(fake.detach(), d_fake)
    g_fake = D(torch.cat([x, fake]))[len(x) :] if joint else D(fake)
    loss_g = gen_weight * mae(x, fake) + mae(fake, g_fake)
    return loss_d, loss_g


def expected_balance(variant, units, real, fake, lr, k=0.0):
    """(w, lr_d, lr_g) from the definitions, written out: slope 20 in [0, 1] units is 10 on [-1, 1] errors."""
    s = 10.0 if units == "unit" else 20.0
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    lrs = (lr * sig(s * (real - fake)), lr * sig(-s * (real - fake))) if variant in ("lr", "gaia") else (lr, lr)
    gate = min(max(sig(s * (0.5 * fake - real)), 0.0), 0.9)
    w = {"lr": 1.0, "none": 1.0, "gaia": max(gate, 1e-3), "began": max(k, 1e-3)}  # floored: see WEIGHT_FLOOR
    return (w[variant], *lrs)


@pytest.mark.parametrize("gen_weight", [1.0, 3.0])
@pytest.mark.parametrize("bn", ["separate", "joint"])
@pytest.mark.parametrize(
    "variant, units",
    [("lr", "image"), ("lr", "unit"), ("gaia", "unit"), ("gaia", "image"), ("began", "unit"), ("none", "unit")],
)
def test_each_balancing_variant_matches_its_hand_computed_losses_rates_and_gradients(variant, units, bn, gen_weight):
    m = make(
        lr=1e-3,
        slope=20.0,
        balance=variant,
        slope_units=units,
        bn=bn,
        gen_weight=gen_weight,
        channels_last=False,
        adam="loop",
    )
    m.k = 0.3 if variant == "began" else 0.0
    m._mode(True)  # what the epoch loop does before the steps
    x = batch()
    G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)  # train mode: outputs use batch statistics
    with torch.no_grad():
        fake = G(x)
        out = D(torch.cat([x, fake])) if bn == "joint" else None
        d_real, d_fake = (out[: len(x)], out[len(x) :]) if bn == "joint" else (D(x), D(fake))
        real, fake_rec, gen = mae(x, d_real).item(), mae(fake, d_fake).item(), mae(x, fake).item()
    w, lr_d, lr_g = expected_balance(variant, units, real, fake_rec, 1e-3, k=0.3)
    loss_d, loss_g = reference(G, D, x, w, bn == "joint", gen_weight)
    ref_d = torch.autograd.grad(loss_d, list(D.parameters()), retain_graph=True)
    ref_g = torch.autograd.grad(loss_g, list(G.parameters()))
    step = m.train_step(m._input(x))
    for key, want in [
        ("real_rec", real),
        ("fake_rec", fake_rec),
        ("gen_rec", gen),
        ("loss_d", real - w * fake_rec),
        ("loss_g", gen_weight * gen + fake_rec),
    ]:
        assert step[key] == pytest.approx(want, rel=1e-5, abs=1e-6), key
    assert step["lr_d"] == pytest.approx(lr_d, rel=1e-6) and step["lr_g"] == pytest.approx(lr_g, rel=1e-6)
    assert m.opt_d.param_groups[0]["lr"] == step["lr_d"] and m.opt_g.param_groups[0]["lr"] == step["lr_g"]
    assert step.get("fake_weight", 1.0) == pytest.approx(w, rel=1e-6)
    for got, want in zip(grads(m.D), ref_d):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    for got, want in zip(grads(m.G), ref_g):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    if variant == "began":  # k moves by lambda (gamma L_real - L_fake), clipped to [0, 1]
        assert m.k == pytest.approx(min(max(0.3 + 0.001 * (0.5 * real - fake_rec), 0), 1))


def test_the_gaia_gate_is_zero_while_d_fails_on_real_images_and_at_most_0_9():
    from ganad.methods.adae.model import gaia_gate

    assert gaia_gate(real_rec=0.8, fake_rec=0.1, slope=10.0) < 1e-3  # D reconstructs real images much worse
    assert gaia_gate(real_rec=0.4, fake_rec=0.45, slope=10.0) < 0.2  # the degraded regime: just above real
    assert gaia_gate(real_rec=0.01, fake_rec=1.0, slope=10.0) == 0.9  # capped
    assert gaia_gate(real_rec=0.25, fake_rec=0.5, slope=10.0) == pytest.approx(0.5)  # sigma 0.5: the midpoint
    values = [gaia_gate(r, 0.5, 10.0) for r in np.linspace(0, 1, 11)]
    assert all(a >= b for a, b in zip(values, values[1:])) and max(values) <= 0.9


def test_the_joint_batchnorm_pass_is_d_on_the_concatenated_batch():
    from ganad.methods.adae.model import adae_forward

    m = make(bn="joint", channels_last=False)
    m._mode(True)
    x = batch()
    G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)
    real_rec, fake_rec, _, _ = adae_forward(m.G, m.D, x, joint_bn=True)
    with torch.no_grad():
        fake = G(x)
        out = D(torch.cat([x, fake]))
    assert real_rec.item() == pytest.approx(mae(x, out[:8]).item(), rel=1e-6)
    assert fake_rec.item() == pytest.approx(mae(fake, out[8:]).item(), rel=1e-6)
    separate, _, _, _ = adae_forward(copy.deepcopy(G), copy.deepcopy(D), x, joint_bn=False)
    assert separate.item() != pytest.approx(real_rec.item(), rel=1e-6)  # the BatchNorm statistics differ


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
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    for a, b in zip(params(G), params(m.G)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


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


@pytest.mark.parametrize("kind", ["d_of_g", "g", "d", "amplification"])
def test_each_score_variant_equals_its_formula(easy, kind):
    _, _, test = easy
    m = make(score=kind)
    m._mode(True)
    m.train_step(m._input(test.x[:32]))
    G, D = copy.deepcopy(m.G).eval(), copy.deepcopy(m.D).eval()
    norm = lambda a, b: torch.stack([torch.sqrt(((ai - bi) ** 2).sum()) for ai, bi in zip(a, b)])  # noqa: E731
    with torch.no_grad():
        x = test.x
        want = {
            "d_of_g": norm(x, D(G(x))),
            "g": norm(x, G(x)),
            "d": norm(x, D(x)),
            "amplification": norm(x, D(G(x))) / norm(x, G(x)),
        }[kind]
    np.testing.assert_allclose(m.score(test), want.numpy(), rtol=1e-5)


@pytest.mark.parametrize("variant", ["gaia", "lr", "began"])
def test_the_warmup_trains_unbalanced_for_its_updates_over_epochs_then_balances(easy, variant):
    train, val, _ = easy
    m = make(epochs=3, batch_size=64, balance=variant, warmup=5, channels_last=False, adam="loop")
    m.k = 0.25
    per_epoch = m.steps_per_epoch(m.config, len(train))
    assert per_epoch < 5  # the warm-up crosses an epoch boundary
    steps = []
    step = m.train_step
    m.train_step = lambda *a, **k: steps.append(step(*a, **k)) or steps[-1]
    m.fit(train, val, TrainingRun(None, "t"))
    assert m.updates == len(steps) == 3 * per_epoch
    for i, out in enumerate(steps):
        if i < 5:  # the warm-up: lr for both, weight 1 on D's fake term, BEGAN's k untouched
            assert out["lr_d"] == out["lr_g"] == 2e-3
            assert out.get("fake_weight", 1.0) == 1.0
        else:
            w, lr_d, lr_g = expected_balance(variant, "unit", out["real_rec"], out["fake_rec"], 2e-3)
            assert out["lr_d"] == pytest.approx(lr_d, rel=1e-6) and out["lr_g"] == pytest.approx(lr_g, rel=1e-6)
            if variant == "gaia":
                assert out["fake_weight"] == pytest.approx(w, rel=1e-6)
    if variant == "began":  # k starts moving only after the warm-up
        assert steps[5]["fake_weight"] == pytest.approx(0.25)


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
    last.fit(train, val)
    assert last.selected() == {}
    assert float(last.score(val).mean()) == pytest.approx(val_scores[-1], rel=1e-6)


def test_a_nan_after_a_checkpoint_leaves_that_checkpoint_as_it_was(easy, tmp_path):
    """The contract test covers a NaN before anything was saved; here one comes after two good epochs."""
    train, val, _ = easy
    ck = tmp_path / "ck.safetensors"
    make(epochs=2).fit(train, val, TrainingRun(ck, "fp"))
    saved = ck.read_bytes()
    train.x[:] = float("nan")  # every batch of epoch 2 is poisoned: step 0 diverges
    with pytest.raises(
        TrainingDiverged, match=r"at epoch 2, step 0; the last good checkpoint stays at " + re.escape(f"'{ck}'")
    ):
        make(epochs=4).fit(train, val, TrainingRun(ck, "fp"))
    assert ck.read_bytes() == saved
    state = store.load(ck)
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [0, 1]
    assert all(
        torch.isfinite(v).all()
        for net in state["state"]["nets"].values()
        for v in net.values()
        if v.is_floating_point()
    )


def test_min_steps_raises_epochs_for_small_sets(easy):
    train, val, _ = easy  # 256 images, batch 32: 8 steps an epoch
    run = TrainingRun(None, "t")
    make(epochs=1, min_steps=20).fit(train, val, run)
    assert len(run.history) == 3


def test_default_config_is_the_papers():
    cfg = parse(ADAEConfig, {}, "methods.adae")
    assert (cfg.latent_dim, cfg.width, cfg.epochs, cfg.batch_size, cfg.lr, cfg.beta1) == (32, 64, 100, 64, 1e-5, 0.5)
    assert cfg.balance and cfg.slope == 20.0 and cfg.min_steps == 0 and cfg.select == "last"


def test_with_the_default_balancing_g_learns_to_reconstruct_each_image_not_one_image(easy):
    """The default run's failure mode was G settling on one image whatever its input (its adversarial gradient
    cancelling its reconstruction gradient): with `began` G's error on the easy set falls below a third of its
    start within 300 updates, and its outputs differ from image to image as much as the images nearly do."""
    train, val, _ = easy
    m = make(epochs=1, min_steps=300, balance="began", batch_size=32, lr=5e-4, width=8, latent_dim=8)
    run = TrainingRun(None, "t")
    steps = []
    original = m.train_step

    def logged(x, epoch=0, step=0):
        out = original(x, epoch, step)
        steps.append(out["gen_rec"])
        return out

    m.train_step = logged
    m.fit(train, val, run)
    assert len(steps) >= 300
    assert np.mean(steps[-20:]) < np.mean(steps[:5]) / 3
    g, _ = m.reconstructions(val.x)
    assert g.std(axis=0).mean() > 0.5 * val.x.numpy().std(axis=0).mean()
