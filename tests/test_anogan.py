"""AnoGAN: the batched latent search against a plain one-image loop, the two loss weightings, the
learning-rate schedule, eval-mode scoring. What every method shares is tests/test_methods.py."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ganad.data.images import ImageSet
from ganad.errors import ParamsError
from ganad.methods.anogan import Config
from ganad.methods.anogan.model import AnoGAN
from ganad.methods.anogan.search import (
    SearchSettings,
    anogan_loss,
    fold_batchnorm,
    initial_latents,
    search,
    search_nets,
)
from ganad.methods.common import nets
from ganad.runtime.device import seed_everything
from ganad.schema import parse

LATENT, WIDTH = 16, 8


def plain_loop(G, D, x, z0, settings):
    """AnoGAN's search written plainly: one image at a time, the networks as trained in eval mode (BatchNorm
    layers, unfolded), torch.optim.Adam on that image's z; the score is the loss at the final z."""
    scores, finals = [], []
    G, f = copy.deepcopy(G).eval(), copy.deepcopy(D)[:-1].eval()
    w_res, w_feat = settings.weights
    for i in range(len(x)):
        xi = x[i : i + 1]
        z = z0[i : i + 1].clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=settings.lr_at(0), betas=settings.betas)

        def loss():
            gz = G(z)
            return w_res * (xi - gz).abs().sum() + w_feat * (f(xi) - f(gz)).abs().sum()

        for step in range(settings.steps):
            opt.param_groups[0]["lr"] = settings.lr_at(step)
            opt.zero_grad()
            loss().backward()
            opt.step()
        with torch.no_grad():
            scores.append(loss().item())
        finals.append(z.detach())
    return torch.tensor(scores, dtype=x.dtype), torch.cat(finals)


@pytest.fixture
def dcgan():
    """A random DCGAN in float64 with non-trivial BatchNorm statistics (what eval mode must use)."""
    torch.manual_seed(0)
    G, D = nets.decoder(1, LATENT, WIDTH).double(), nets.encoder(1, 1, WIDTH).double()
    nets.dcgan_init(G)
    nets.dcgan_init(D)
    for m in [*G.modules(), *D.modules()]:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    x = torch.rand(5, 1, 32, 32, dtype=torch.float64) * 2 - 1
    z0 = initial_latents(5, LATENT, seed=3).double()
    return G, D, x, z0


SETTINGS = SearchSettings(steps=30, lr=((0.5, 0.05), (1.0, 0.01)))


@pytest.mark.parametrize("weighting", ["feature", "residual"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_batched_search_equals_plain_loop(dcgan, weighting, channels_last):
    G, D, x, z0 = dcgan
    settings = SearchSettings(steps=30, lr=SETTINGS.lr, weighting=weighting)
    want, want_z = plain_loop(G, D, x, z0, settings)
    g, f = search_nets(G, D, channels_last)
    got, got_z = search(g, f, x.contiguous(memory_format=torch.channels_last) if channels_last else x, z0, settings)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)
    torch.testing.assert_close(got_z, want_z, rtol=1e-7, atol=1e-9)
    assert not torch.allclose(got_z, z0)  # the search moved


def test_plain_loop_comparison_is_sensitive(dcgan):
    G, D, x, z0 = dcgan
    g, f = search_nets(G, D)
    want, _ = plain_loop(G, D, x, z0, SETTINGS)
    for other in (SearchSettings(steps=30, lr=SETTINGS.lr, lam=0.2), SearchSettings(steps=29, lr=SETTINGS.lr)):
        got, _ = search(g, f, x, z0, other)
        assert not torch.allclose(got, want, rtol=1e-9, atol=0)  # the tolerance of the equality test


def test_search_lowers_each_images_loss(dcgan):
    G, D, x, z0 = dcgan
    g, f = search_nets(G, D)
    with torch.no_grad():
        before = anogan_loss(g, f, x, f(x), z0, SETTINGS)
    after, _ = search(g, f, x, z0, SETTINGS)
    assert torch.all(after < before)


def test_folded_batchnorm_is_the_same_function(dcgan):
    G, D, x, z0 = dcgan
    g, f = search_nets(G, D, channels_last=False)
    with torch.no_grad():
        torch.testing.assert_close(g(z0), G.eval()(z0), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f(x), D.eval()[:-1](x), rtol=1e-12, atol=1e-12)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*g.modules(), *f.modules()])
    assert not any(p.requires_grad for p in [*g.parameters(), *f.parameters()])
    assert all(p.requires_grad for p in [*G.parameters(), *D.parameters()])  # the trained nets are untouched
    assert isinstance(fold_batchnorm(nn.Sequential(nn.Tanh())), nn.Sequential)


class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize(
    "weighting, expected", [("feature", 0.9 * 3.5 + 0.1 * 7.0), ("residual", 0.1 * 3.5 + 0.9 * 7.0)]
)
def test_the_two_weightings_by_hand(weighting, expected):
    """x = 0, G(z) = z as a 2x2 image, f doubles: |x - G(z)|_1 = 3.5 and |f(x) - f(G(z))|_1 = 7."""
    x = torch.zeros(1, 1, 2, 2)
    z = torch.tensor([[1.0, -2.0, 0.5, 0.0]])
    G = nn.Unflatten(1, (1, 2, 2))
    loss = anogan_loss(G, Doubler(), x, Doubler()(x), z, SearchSettings(lam=0.1, weighting=weighting))
    assert loss.item() == pytest.approx(expected)


def test_egbad_learning_rate_schedule():
    s = SearchSettings(steps=500)
    assert [s.lr_at(i) for i in (0, 199, 200, 299, 300, 499)] == [0.01, 0.01, 0.001, 0.001, 0.0005, 0.0005]
    assert SearchSettings(steps=10, lr=((1.0, 0.3),)).lr_at(9) == 0.3


@pytest.mark.parametrize("bad", [[[0.5, 0.01]], [[1.0, -1.0]], [[0.6, 0.01], [0.4, 0.1], [1.0, 0.1]], [], [[1.0]]])
def test_bad_schedules_are_refused_by_name(bad):
    with pytest.raises(ParamsError, match=r"methods\.anogan\.search_lr = .* must be a list of \[until, lr\]"):
        parse(Config, {"search_lr": bad}, "methods.anogan")


def test_initial_latents_are_per_image_and_truncated():
    a = initial_latents(6, LATENT, seed=1)
    torch.testing.assert_close(initial_latents(3, LATENT, seed=1, first=3), a[3:], rtol=0, atol=0)
    assert a.abs().max() <= 2.0 and not torch.equal(a, initial_latents(6, LATENT, seed=2))


@pytest.fixture(scope="module")
def trained():
    from conftest import inverted_blob_sets

    train, val, test = inverted_blob_sets()
    seed_everything(0)
    config = parse(
        Config,
        {"latent_dim": LATENT, "width": WIDTH, "batch_size": 32, "epochs": 2, "search_steps": 8, "val_images": 2},
        "methods.anogan",
    )
    method = AnoGAN(config, 1, torch.device("cpu"))
    method.fit(train, val)
    return method, test


def test_scores_do_not_depend_on_the_search_batch_size(trained):
    method, test = trained
    images = ImageSet(test.x[:10], test.labels[:10], test.index[:10])
    whole = method.score(images)
    method.config.search_batch_size = 3
    try:
        np.testing.assert_allclose(method.score(images), whole, rtol=1e-5)
    finally:
        method.config.search_batch_size = 1024


def test_scoring_leaves_the_trained_networks_as_they_were(trained):
    method, test = trained
    before = {
        k: v.clone()
        for k, v in {**method.G.state_dict(), **{f"D.{n}": t for n, t in method.D.state_dict().items()}}.items()
    }
    method.score(ImageSet(test.x[:4], test.labels[:4], test.index[:4]))
    after = {**method.G.state_dict(), **{f"D.{n}": t for n, t in method.D.state_dict().items()}}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in [*method.G.parameters(), *method.D.parameters()])
    assert not method.G.training and not method.D.training
