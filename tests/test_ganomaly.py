"""GANomaly: the loss weightings, the order of the two updates, D's re-initialisation, the latent score
in eval mode. What every method shares is tests/test_methods.py."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ganad.methods.ganomaly import Config
from ganad.methods.ganomaly.model import GANomaly
from ganad.runtime.device import seed_everything
from ganad.schema import parse

CPU = torch.device("cpu")


def build(**section):
    seed_everything(0)
    config = parse(Config, {"latent_dim": 8, "width": 8, "batch_size": 16, **section}, "methods.ganomaly")
    return GANomaly(config, 1, CPU)


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.rand(16, 1, 32, 32) * 2 - 1


def test_generator_loss_weights_by_hand():
    m = build(w_adv=2.0, w_con=50.0, w_enc=3.0)
    x, x_hat = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])  # L1 mean 0.625
    z, z_hat = torch.zeros(1, 2, 1, 1), torch.tensor([[[[1.0]], [[3.0]]]])  # squared mean 5
    f_real, f_fake = torch.zeros(1, 4), torch.tensor([[2.0, 0.0, 0.0, 0.0]])  # squared mean 1
    loss, parts = m.generator_loss(x, x_hat, z, z_hat, f_real, f_fake)
    assert parts == {"loss_adv": 1.0, "loss_con": 0.625, "loss_enc": 5.0}
    assert loss.item() == pytest.approx(2.0 * 1.0 + 50.0 * 0.625 + 3.0 * 5.0)
    assert (Config().w_adv, Config().w_con, Config().w_enc) == (1.0, 50.0, 1.0)  # the reference's weights


def test_discriminator_loss_by_hand():
    zero = torch.zeros(4)
    assert GANomaly.discriminator_loss(zero, zero).item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    want = 0.5 * (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)))
    assert GANomaly.discriminator_loss(real, fake).item() == pytest.approx(want)


def test_one_step_is_a_generator_update_then_a_discriminator_update(batch):
    """G steps on L_G; D steps on L_D of its outputs before either update, free of what L_G left in its
    gradients. Reproduced here by hand from copies of the networks, with plain SGD in place of Adam so
    that every gradient's size shows in the update (Adam's first step is about lr * sign(gradient))."""
    m = build()
    m.opt_g, m.opt_d = torch.optim.SGD(m.G.parameters(), lr=0.1), torch.optim.SGD(m.D.parameters(), lr=0.1)
    G, D = copy.deepcopy(m.G).train(), copy.deepcopy(m.D).train()
    x_hat, z, z_hat = G(batch)
    logit_real, logit_fake = D(batch).view(-1), D(x_hat.detach()).view(-1)
    loss_d = 0.5 * (
        F.binary_cross_entropy_with_logits(logit_real, torch.ones(16))
        + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros(16))
    )
    d_grads = torch.autograd.grad(loss_d, list(D.parameters()))
    f_real, f_fake = D[:-1](batch).detach(), D[:-1](x_hat)
    loss_g = F.mse_loss(f_fake, f_real) + 50 * F.l1_loss(x_hat, batch) + F.mse_loss(z_hat, z)
    g_grads = torch.autograd.grad(loss_g, list(G.parameters()))
    for net, grads in ((G, g_grads), (D, d_grads)):
        for p, g in zip(net.parameters(), grads):
            p.grad = g
        torch.optim.SGD(net.parameters(), lr=0.1).step()

    out = m.train_step(batch)
    assert out["loss_d"] == pytest.approx(loss_d.item(), rel=1e-6)
    assert out["loss_g"] == pytest.approx(loss_g.item(), rel=1e-6)
    for mine, want in ((m.G, G), (m.D, D)):
        for p, q in zip(mine.parameters(), want.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_discriminator_is_reinitialised_when_it_wins(batch):
    m = build(reinit_threshold=1e9)  # every step counts as a win
    before = [p.clone() for p in m.D.parameters()]
    outs = [m.train_step(batch) for _ in range(3)]
    assert [o["d_reinit"] for o in outs] == [1.0, 1.0, 1.0] and m.d_reinits == 3
    assert m.selected()["d_reinits"] == 3
    # a fresh DCGAN initialisation: N(0, 0.02) convolutions, not the trained weights
    assert not torch.equal(before[0], next(m.D.parameters()))
    assert abs(next(m.D.parameters()).std().item() - 0.02) < 0.005
    off = build(reinit_d=False, reinit_threshold=1e9)
    assert [off.train_step(batch)["d_reinit"] for _ in range(2)] == [0.0, 0.0] and off.d_reinits == 0


def test_score_is_the_latent_distance_in_eval_mode(batch):
    m = build()
    for _ in range(3):
        m.train_step(batch)  # BatchNorm running statistics now differ from batch statistics
    import numpy as np

    from ganad.data.images import ImageSet

    images = ImageSet(batch, np.zeros(16, dtype=np.int64), np.arange(16))
    scores = m.score(images)
    G = copy.deepcopy(m.G).eval()
    with torch.no_grad():
        z = G.encoder1(batch)
        want = (z - G.encoder2(G.decoder(z))).pow(2).flatten(1).mean(1).double().numpy()
    np.testing.assert_allclose(scores, want, rtol=1e-5)
    # eval mode: one image's score does not depend on the others in its batch
    alone = m.score(ImageSet(batch[3:4], np.zeros(1, dtype=np.int64), np.arange(1)))
    np.testing.assert_allclose(alone, scores[3:4], rtol=1e-5)
    assert not m.G.training and not m.D.training
