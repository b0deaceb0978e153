"""ADGAN: the batched latent search against a plain per-pair loop, WGAN training, critic_steps on resume,
score variants. What every method shares is tests/test_methods.py."""

import copy

import numpy as np
import pytest
import torch

from ganad.data.images import ImageSet
from ganad.methods.adgan import Config as ADGANConfig
from ganad.methods.adgan.model import ADGAN
from ganad.methods.adgan.reference import reference_search
from ganad.methods.adgan.search import BatchedSearch, SearchSettings, initial_latents
from ganad.methods.common import nets
from ganad.methods.common.training_run import TrainingRun
from ganad.runtime import store
from ganad.runtime.device import seed_everything

LATENT = 16


def trained_like_generator(channels=1, width=4, seed=0):
    """A float64 generator whose output depends strongly on z, with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    gen = nets.decoder(channels, LATENT, width)  # PyTorch's default init: larger weights than DCGAN's
    for m in gen.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return gen.double().eval()


def images_near(gen, n, seed=1):
    """Test images close to the generator's range, so that the search makes visible progress."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = gen(torch.randn(n, LATENT, 1, 1, generator=g, dtype=torch.float64))
    return (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)


@pytest.fixture(scope="module")
def setup():
    gen = trained_like_generator(channels=3, width=4)
    x = images_near(gen, 3)
    z0 = initial_latents(3, 4, LATENT, torch.Generator().manual_seed(2), dtype=torch.float64)
    return gen, x, z0


_reference_cache = {}


def cached_reference(setup, **kw):
    """The plain loop on the module's setup, run once per set of arguments."""
    key = tuple(sorted(kw.items()))
    if key not in _reference_cache:
        _reference_cache[key] = reference_search(*setup, **kw)
    return _reference_cache[key]


@pytest.mark.parametrize("fused", [True, False])  # the CPU kernels, and the torch code a GPU runs
@pytest.mark.parametrize("update_params", [True, False])
@pytest.mark.parametrize(
    "pairs_per_batch,block_elements", [(4, None), (5, None), (12, None), (1, None), (5, 200), (12, 3000)]
)
def test_batched_search_equals_plain_loop(setup, update_params, pairs_per_batch, block_elements, fused):
    """12 pairs (3 images x 4 seeds), batches dividing 12 or not, whole tensors or row blocks per pair."""
    gen, x, z0 = setup
    lr_theta = 1e-2  # larger than the paper's 5e-5 so that parameter updates move the losses visibly
    expected, z_final = cached_reference(setup, k=3, lr_theta=lr_theta, update_params=update_params)
    settings = SearchSettings(
        n_seed=4, k=3, lr_theta=lr_theta, pairs_per_batch=pairs_per_batch, update_params=update_params
    )
    result = BatchedSearch(gen, settings, block_elements=block_elements, fused=fused).run(x, z0=z0)
    torch.testing.assert_close(result.loss, expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(result.scores(), expected.mean(1), rtol=1e-10, atol=0)
    neg_log_prior = 0.5 * z_final.pow(2).sum(-1) + 0.5 * LATENT * np.log(2 * np.pi)
    torch.testing.assert_close(result.neg_log_prior, neg_log_prior, rtol=1e-10, atol=0)


def test_plain_loop_comparison_is_sensitive(setup):
    """The tolerance above is far below what parameter updates, one step more or less, or train-mode
    BatchNorm change: the equality is not vacuous."""
    gen, x, z0 = setup
    base, _ = cached_reference(setup, k=3, lr_theta=1e-2, update_params=True)
    for other in (
        cached_reference(setup, k=3, lr_theta=1e-2, update_params=False)[0],
        cached_reference(setup, k=2, lr_theta=1e-2, update_params=True)[0],
    ):
        assert ((other - base).abs() / base).max() > 1e-4
    paper, _ = cached_reference(setup, k=3, update_params=True)  # the paper's lr_theta = 5e-5 still counts
    frozen, _ = cached_reference(setup, k=3, update_params=False)
    assert ((paper - frozen).abs() / frozen).max() > 1e-7
    train_mode = copy.deepcopy(gen).train()
    with torch.no_grad():
        first = (train_mode(z0[0].view(4, LATENT, 1, 1)) - x[:1]).pow(2).flatten(1).sum(1)
    eval_first = (gen(z0[0].view(4, LATENT, 1, 1)) - x[:1]).pow(2).flatten(1).sum(1).detach()
    assert ((first - eval_first).abs() / eval_first).max() > 1e-3


@pytest.mark.parametrize("k", [1, 2, 5])
def test_paper_settings_match_plain_loop_on_one_image(k):
    """The paper's step sizes (lr_theta 5e-5), k 5 (and a single step, where the first step is also
    the last), a batch that splits an image's seeds."""
    gen = trained_like_generator(channels=1, width=8, seed=3)
    x = images_near(gen, 2, seed=4)
    z0 = initial_latents(2, 3, LATENT, torch.Generator().manual_seed(5), dtype=torch.float64)
    expected, _ = reference_search(gen, x, z0, k=k)
    for fused in (True, False):
        result = BatchedSearch(gen, SearchSettings(n_seed=3, k=k, pairs_per_batch=4), fused=fused).run(x, z0=z0)
        torch.testing.assert_close(result.loss, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("update_params", [True, False])
@pytest.mark.parametrize("workers,pairs_per_batch", [(2, 1), (2, 5), (3, 2)])
def test_parallel_workers_equal_plain_loop_and_one_worker(setup, update_params, workers, pairs_per_batch):
    """Batches searched in worker threads, finishing in any order, land in their own rows: the same
    losses, latents and progress count as one batch at a time, bit for bit, and as the plain loop."""
    gen, x, z0 = setup
    expected, _ = cached_reference(setup, k=3, lr_theta=1e-2, update_params=update_params)
    kw = dict(n_seed=4, k=3, lr_theta=1e-2, pairs_per_batch=pairs_per_batch, update_params=update_params)
    one = BatchedSearch(gen, SearchSettings(**kw)).run(x, z0=z0)
    done = []
    threads_before = torch.get_num_threads()
    many = BatchedSearch(gen, SearchSettings(**kw, workers=workers)).run(x, z0=z0, progress=done.append)
    assert torch.get_num_threads() == threads_before
    assert sum(done) == 12
    torch.testing.assert_close(many.loss, one.loss, rtol=0, atol=0)
    torch.testing.assert_close(many.neg_log_prior, one.neg_log_prior, rtol=0, atol=0)
    torch.testing.assert_close(many.loss, expected, rtol=1e-10, atol=0)


def test_fused_search_keeps_no_first_layer_moments(setup):
    """The kernels replay the first layer's moments from k latent and gradient vectors per pair instead
    of storing two copies of its weights: that is the whole difference in per-pair state."""
    gen, x, z0 = setup
    settings = SearchSettings(n_seed=4, k=3, pairs_per_batch=4)
    sizes = {}
    for fused in (True, False):
        search = BatchedSearch(gen, settings, fused=fused)
        search.run(x[:1], z0=z0[:1])
        sizes[fused] = search.per_pair_bytes()
    first = gen[0].weight
    history = settings.k * (first.shape[0] + first[0].numel()) * first.element_size()
    assert sizes[False] - sizes[True] == 2 * first.numel() * first.element_size() - history > 0


def test_adgan_search_workers_auto_follows_torch_threads_on_cpu():
    method = ADGAN(ADGANConfig(latent_dim=LATENT, width=4, n_seed=4, pairs_per_batch=8), 1, torch.device("cpu"))
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert method.search_settings(64).workers == 2
        assert method.search_settings(8).workers == 1  # one batch: nothing to share out
    finally:
        torch.set_num_threads(threads_before)
    fixed = ADGAN(
        ADGANConfig(latent_dim=LATENT, width=4, n_seed=4, search_workers=3, pairs_per_batch=8), 1, torch.device("cpu")
    )
    assert fixed.search_settings(64).workers == 3


def test_search_leaves_generator_untouched_and_repeats(setup):
    """Parameters go back to the trained values for every image: nothing drifts between images or runs."""
    gen, x, z0 = setup
    before = copy.deepcopy(gen.state_dict())
    search = BatchedSearch(gen, SearchSettings(n_seed=4, k=3, lr_theta=1e-2, pairs_per_batch=5))
    first = search.run(x, z0=z0).loss
    second = search.run(x, z0=z0).loss
    for key, value in gen.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not gen.training and not any(m.training for m in gen.modules())
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # each image alone gives what it gets in the batch: no state carries over from earlier images
    alone = search.run(x[2:], z0=z0[2:]).loss
    torch.testing.assert_close(alone, first[2:], rtol=1e-12, atol=0)


def test_drawn_latents_do_not_depend_on_batching(setup):
    gen, x, _ = setup
    a = BatchedSearch(gen, SearchSettings(n_seed=4, k=2, pairs_per_batch=3)).run(
        x, generator=torch.Generator().manual_seed(7)
    )
    b = BatchedSearch(gen, SearchSettings(n_seed=4, k=2, pairs_per_batch=8)).run(
        x, generator=torch.Generator().manual_seed(7)
    )
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-12, atol=0)
    z0 = initial_latents(3, 4, LATENT, torch.Generator().manual_seed(7), dtype=torch.float64)
    c = BatchedSearch(gen, SearchSettings(n_seed=4, k=2, pairs_per_batch=5)).run(x, z0=z0)
    torch.testing.assert_close(a.loss, c.loss, rtol=1e-12, atol=0)


def test_unsupported_generator_is_refused():
    gen = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 8, 4, bias=False), torch.nn.LeakyReLU())
    with pytest.raises(TypeError, match="LeakyReLU"):
        BatchedSearch(gen, SearchSettings())


# --- the method -------------------------------------------------------------------------------------


def make(epochs=2, **kw):
    seed_everything(0)
    options = dict(latent_dim=LATENT, width=8, epochs=epochs, batch_size=32, n_seed=4, k=3, val_images=4)
    options.update(kw)
    return ADGAN(ADGANConfig(**options), 1, torch.device("cpu"))


def subset(images: ImageSet, idx) -> ImageSet:
    return ImageSet(images.x[idx], images.labels[idx], images.index[idx])


def test_paper_wgan_trains_with_clipped_critic(easy):
    train, val, _ = easy
    model = make(epochs=1, n_critic=2)
    run = TrainingRun(None, "t")
    model.fit(train, val, run)
    assert set(run.history[0]) == {"epoch", "wasserstein", "loss_critic", "loss_gen", "val_score"}
    assert all(np.isfinite(v) for v in run.history[0].values())
    assert model.critic_steps == 8  # 256 images in full batches of 32; the generator stepped 4 times
    assert max(p.abs().max().item() for p in model.critic.parameters()) <= 0.01 + 1e-9
    assert isinstance(model.opt_d, torch.optim.RMSprop)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.critic.modules())
    gp = make(epochs=1, objective="wgan_gp", n_critic=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in gp.critic.modules())
    assert isinstance(gp.opt_d, torch.optim.Adam) and gp.opt_d.defaults["betas"] == (0.5, 0.9)
    run = TrainingRun(None, "t")
    gp.fit(subset(train, np.arange(64)), val, run)  # the gradient penalty path runs and stays finite
    assert all(np.isfinite(v) for v in run.history[0].values())


def test_min_steps_raises_epochs():
    model = make(epochs=2, min_steps=10, n_critic=5, batch_size=32)
    assert model.epochs(model.config, 320) == 5  # 10 critic steps per epoch, 2 generator steps per epoch
    assert model.epochs(model.config, 3200) == 2


def test_resume_restores_the_critic_step_count(easy, tmp_path):
    """4 critic steps an epoch and n_critic 3: which critic steps the generator follows depends on the count
    carried over from earlier epochs, so the checkpoint must keep it. (In the contract test an epoch is a
    multiple of n_critic critic steps, where a lost count would go unnoticed.)"""
    train, val, _ = easy
    train = subset(train, np.arange(128))
    full = make(epochs=3, n_critic=3)
    full.fit(train, val)
    assert full.critic_steps == 12

    make(epochs=1, n_critic=3).fit(train, val, TrainingRun(tmp_path / "ck", "same"))
    assert store.load(tmp_path / "ck")["state"]["extra"] == {"critic_steps": 4}
    resumed = make(epochs=3, n_critic=3)
    torch.manual_seed(123)  # resume must restore the RNG, not rely on the caller's state
    run = TrainingRun(tmp_path / "ck", "same")
    resumed.fit(train, val, run)
    assert [h["epoch"] for h in run.history] == [0, 1, 2]
    assert resumed.critic_steps == full.critic_steps
    for a, b in [(full.generator, resumed.generator), (full.critic, resumed.critic)]:
        for (key, u), v in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(u, v, rtol=0, atol=0, msg=key)


def test_critic_and_prior_variants_are_finite_and_shaped(easy):
    train, val, test = easy
    test = subset(test, np.arange(0, 128, 8))
    model = make(epochs=1)
    model.fit(subset(train, np.arange(64)), val)
    state = model.state_dict()
    scores = {}
    for kind in ("critic", "prior", "reconstruction"):
        variant = ADGAN(model.config.model_copy(update={"score": kind}), 1, torch.device("cpu"))
        variant.load_state_dict(state)
        scores[kind] = variant.score(test)
        assert scores[kind].shape == (len(test),) and np.all(np.isfinite(scores[kind])), kind
    with torch.no_grad():
        critic = -model.critic.eval()(test.x).view(-1).double().numpy()
    np.testing.assert_allclose(scores["critic"], critic, rtol=1e-6)  # higher = less like the training data
    assert np.all(scores["prior"] > 0.5 * LATENT * np.log(2 * np.pi))  # -log N(z) exceeds its value at z = 0


def test_paper_defaults():
    cfg = ADGANConfig()
    assert (cfg.latent_dim, cfg.width, cfg.objective, cfg.lr, cfg.clip, cfg.n_critic) == (
        256,
        64,
        "wgan",
        5e-5,
        0.01,
        5,
    )
    assert (cfg.n_seed, cfg.k, cfg.lr_z, cfg.lr_theta, cfg.search_beta1, cfg.search_beta2) == (
        64,
        5,
        0.25,
        5e-5,
        0.5,
        0.999,
    )
    assert cfg.update_params and cfg.score == "reconstruction"
    assert (cfg.gp_lambda, cfg.gp_lr, cfg.gp_beta1, cfg.gp_beta2) == (10.0, 1e-4, 0.5, 0.9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_search_equals_cpu(setup):
    gen, x, z0 = setup
    settings = SearchSettings(n_seed=4, k=3, lr_theta=1e-2, pairs_per_batch=12)
    cpu = BatchedSearch(gen, settings).run(x, z0=z0).loss
    gpu = BatchedSearch(copy.deepcopy(gen).cuda(), settings).run(x, z0=z0).loss
    torch.testing.assert_close(gpu, cpu, rtol=1e-9, atol=0)


def test_fused_kernels_refused_off_the_cpu_and_state_before_allocation(setup):
    gen, _, _ = setup
    on_meta = copy.deepcopy(gen).to("meta")  # a non-CPU device, with no GPU needed
    with pytest.raises(ValueError, match="CPU only; use fused=False"):
        BatchedSearch(on_meta, SearchSettings(n_seed=4, k=3), fused=True)
    assert not BatchedSearch(on_meta, SearchSettings(n_seed=4, k=3)).fused  # the default off the CPU
    with pytest.raises(RuntimeError, match="nothing allocated yet"):
        BatchedSearch(gen, SearchSettings(n_seed=4, k=3)).per_pair_bytes()
