"""The classical baselines (KDE, OC-SVM, Isolation Forest, GMM, AlexNet variants) and the VAE.

Synthetic 32x32 images: normal = smooth, low-contrast cosine textures; anomalies
= high-contrast textures of the same bases plus a checkerboard, so they differ
inside the normal PCA subspace (where the classical detectors look) and outside
it (what the VAE's reconstruction sees). Every fit takes well under a few seconds.

What every method shares (fit and separate, save/load, same seed, resume, NaN stop, every params
field refusing junk) is tests/test_methods.py; here are each method's own choices.
"""

from __future__ import annotations

import math
import urllib.error

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity

from ganad.data.images import ImageSet
from ganad.errors import ParamsError
from ganad.methods.common import features
from ganad.methods.common.features import alexnet
from ganad.methods.common.features.alexnet import WeightsUnavailable
from ganad.methods.common.training_run import TrainingRun
from ganad.methods.configs import PAPER_BANDWIDTHS, PAPER_COMPONENTS, PAPER_PCA_SIZES
from ganad.methods.gmm.model import GMM
from ganad.methods.iforest.model import IForest
from ganad.methods.kde.model import KDE
from ganad.methods.kde_alexnet.model import KDEAlexNet
from ganad.methods.ocsvm.model import OCSVM
from ganad.methods.ocsvm_alexnet.model import OCSVMAlexNet
from ganad.methods.vae.model import VAE
from ganad.schema import parse

CPU = torch.device("cpu")
CLASSICAL = [KDE, OCSVM, IForest, GMM]


def _bases() -> np.ndarray:
    y, x = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="ij")
    shapes = [np.cos(np.pi * y / 16), np.cos(np.pi * x / 16), np.cos(np.pi * (x + y) / 32)]
    return np.stack(shapes).astype(np.float32)


def synthetic(n_normal: int, n_anomalous: int, seed: int) -> ImageSet:
    """Normal: 0.2 * sum c_j B_j, c ~ N(0, 1); anomalous: +-0.7 per basis plus a checkerboard."""
    rng = np.random.default_rng(seed)
    bases = _bases()
    coef = np.concatenate(
        [0.2 * rng.standard_normal((n_normal, 3)), 0.7 * rng.choice([-1.0, 1.0], (n_anomalous, 3))]
    ).astype(np.float32)
    x = np.einsum("nj,jhw->nhw", coef, bases)
    checker = (np.indices((32, 32)).sum(0) % 2 * 2 - 1).astype(np.float32)
    x[n_normal:] += 0.3 * checker
    x += 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    labels = np.r_[np.zeros(n_normal, np.int64), np.ones(n_anomalous, np.int64)]
    return ImageSet(torch.from_numpy(np.clip(x, -1, 1))[:, None], labels, np.arange(len(labels)))


@pytest.fixture(scope="module")
def data():
    return {
        "train": synthetic(200, 0, 1),
        "val": synthetic(40, 0, 2),
        "test": synthetic(60, 60, 3),
        "poison": synthetic(0, 80, 4),
    }


def concat(a: ImageSet, b: ImageSet) -> ImageSet:
    return ImageSet(torch.cat([a.x, b.x]), np.r_[a.labels, b.labels], np.r_[a.index, b.index + 10_000])


def make(cls, **section):
    return cls(parse(cls.Config, section, f"methods.{cls.name}"), 1, CPU)


def fitted(cls, data, **section):
    method = make(cls, **section)
    method.fit(data["train"], data["val"])
    return method


VAE_FAST = {"latent_dim": 4, "width": 8, "epochs": 8, "batch_size": 32, "lr": 2e-3, "score_samples": 4}


def fitted_vae(data, run=None):
    torch.manual_seed(0)
    method = make(VAE, **VAE_FAST)
    method.fit(data["train"], data["val"], run or TrainingRun(None, "test"))
    return method


@pytest.fixture(scope="module")
def vae_fit(data):
    run = TrainingRun(None, "test")
    return fitted_vae(data, run), run


@pytest.fixture(scope="module")
def models(data):
    """One fit per classical method (seed 0), shared by the tests that only read it."""
    cache = {}

    def get(cls):
        if cls not in cache:
            cache[cls] = fitted(cls, data, seed=0)
        return cache[cls]

    return get


# --- the VAE's curves ---


def test_vae_logs_its_elbo_terms_every_epoch(vae_fit):
    _, run = vae_fit
    assert [h["epoch"] for h in run.history] == list(range(VAE_FAST["epochs"]))
    assert set(run.history[-1]) == {"epoch", "train_loss", "train_rec", "train_kl", "val_score", "obs_std"}
    for h in run.history:
        assert h["train_loss"] == pytest.approx(h["train_rec"] + h["train_kl"], rel=1e-6)  # float32 sums
        assert h["train_kl"] > 0 and h["obs_std"] > 0
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.history[-1]["obs_std"] < run.history[0]["obs_std"]  # the calibrated sigma follows the error


# --- model selection uses training / validation normal data only ---


@pytest.mark.parametrize("cls", CLASSICAL + [VAE], ids=lambda c: c.name)
def test_choices_and_scores_do_not_depend_on_test_data(cls, data, models, vae_fit):
    """Two fits on the same train/val agree; scoring clean images beside a poisoned set changes nothing."""
    clean, poisoned = data["test"], concat(data["test"], data["poison"])
    first = vae_fit[0] if cls is VAE else models(cls)
    second = fitted_vae(data) if cls is VAE else fitted(cls, data, seed=0)
    assert first.selected() == second.selected()
    a, b = first.score(clean), second.score(poisoned)[: len(clean)]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # and one image at a time gives the same score as the whole set
    single = np.concatenate(
        [
            first.score(ImageSet(clean.x[i : i + 1], clean.labels[i : i + 1], clean.index[i : i + 1]))
            for i in (0, 59, 60, 119)
        ]
    )
    np.testing.assert_allclose(single, a[[0, 59, 60, 119]], rtol=1e-5, atol=1e-4)


def test_pca_size_comes_from_the_grid_and_is_capped(data, models):
    method = models(IForest)
    assert method.selected()["pca_size"] in PAPER_PCA_SIZES
    assert set(method.model["pca_curve"]) == set(PAPER_PCA_SIZES)
    small = {
        "train": ImageSet(data["train"].x[:30], data["train"].labels[:30], data["train"].index[:30]),
        "val": data["val"],
    }
    capped = fitted(KDE, small, seed=0)
    assert set(capped.model["pca_curve"]) == {20, 29}  # 40..100 capped at 30 training images - 1
    assert capped.selected()["train_used"] == 30


def test_pca_size_criterion_prefers_the_size_that_explains_held_out_normals():
    """Normal data spread over 30 directions (plus faint noise): sizes below 30 lose held-out likelihood."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((1024, 40)))[0].T  # 40 orthonormal directions
    scales = np.r_[np.full(30, 3.0), np.zeros(10)]

    def sample(n):
        x = (rng.standard_normal((n, 40)) * scales) @ basis + 0.01 * rng.standard_normal((n, 1024))
        return ImageSet(
            torch.from_numpy(x.reshape(n, 1, 32, 32).astype(np.float32)), np.zeros(n, np.int64), np.arange(n)
        )

    method = fitted(KDE, {"train": sample(300), "val": sample(60)}, seed=0, pca_sizes=[10, 20, 30, 40, 60])
    curve = method.model["pca_curve"]
    assert curve[30] > curve[20] > curve[10]  # a size below the signal's 30 dims loses held-out likelihood
    assert method.selected()["pca_size"] >= 30


def test_kde_bandwidth_is_chosen_from_the_paper_grid(data, models):
    method = models(KDE)
    assert [2 ** (j / 2) for j in range(9)] == PAPER_BANDWIDTHS
    assert method.selected()["bandwidth"] in PAPER_BANDWIDTHS


def test_kde_matches_scikit_learn_kernel_density_and_grid_search():
    """Where KernelDensity is accurate (low dimension), our exact KDE and CV choose and score the same."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((150, 3)) * 4
    query = rng.standard_normal((40, 3)) * 6
    ours = features.gaussian_kde_logpdf(z, query, [2.0])[:, 0]
    np.testing.assert_allclose(ours, KernelDensity(bandwidth=2.0).fit(z).score_samples(query), rtol=1e-8)
    folds = KFold(10, shuffle=True, random_state=0)
    search = GridSearchCV(KernelDensity(), {"bandwidth": PAPER_BANDWIDTHS}, cv=folds).fit(z)
    cv = features.kde_cv_loglik(z, PAPER_BANDWIDTHS, 10, seed=0)
    assert PAPER_BANDWIDTHS[int(np.argmax(cv))] == search.best_params_["bandwidth"]
    np.testing.assert_allclose(cv, 10 * search.cv_results_["mean_test_score"], rtol=1e-6)  # sum vs mean of folds


def test_gmm_components_are_chosen_by_bic_from_the_paper_grid(data, models):
    method = models(GMM)
    chosen = method.selected()["components"]
    assert chosen in PAPER_COMPONENTS and list(range(2, 21)) == PAPER_COMPONENTS
    m = method.model
    z = (data["train"].x.flatten(1).numpy().astype(np.float64) - m["pca"].mean_) @ m["pca"].components_[: m["k"]].T
    bics = {c: GaussianMixture(c, covariance_type="diag", random_state=0).fit(z).bic(z) for c in PAPER_COMPONENTS}
    assert chosen == min(bics, key=bics.get)


def test_ocsvm_gamma_is_tuned_on_training_data_only(data, models):
    method = models(OCSVM)
    gamma = method.selected()["gamma"]
    assert gamma > 0 and method.model["detector"].nu == 0.1
    scale = fitted(OCSVM, data, seed=0, gamma="scale")
    assert scale.selected()["gamma"] != gamma


# --- resume ---


def test_classical_fit_resumes_from_its_checkpoint_without_refitting(data, tmp_path):
    """The contract test refits with the same seed, which would give the same scores anyway; here the
    second fit gets 5 images, and restores the first instead of fitting them."""
    run = TrainingRun(tmp_path / "ckpt", "fp")
    first = make(KDE, seed=0)
    first.fit(data["train"], data["val"], run)
    assert len(run.history) == 1 and "val_score_mean" in run.history[0]
    again = TrainingRun(tmp_path / "ckpt", "fp")
    second = make(KDE, seed=0)
    second.fit(ImageSet(data["train"].x[:5], data["train"].labels[:5], data["train"].index[:5]), data["val"], again)
    assert len(again.history) == 1  # restored, not refitted on the 5 images
    np.testing.assert_array_equal(second.score(data["test"]), first.score(data["test"]))


def test_vae_min_steps_raises_the_epoch_count(data):
    run = TrainingRun(None, "test")
    torch.manual_seed(0)
    make(VAE, **{**VAE_FAST, "epochs": 1, "min_steps": 8}).fit(data["train"], data["val"], run)
    assert len(run.history) == 2  # 200 images in batches of 32: 7 steps an epoch


def test_vae_score_is_the_negative_elbo(data):
    """With a fixed sigma and one posterior sample at the mean's noise, the score is recomputable by hand."""
    torch.manual_seed(0)
    method = fitted(VAE, data, **{**VAE_FAST, "epochs": 1, "obs_std": 0.5, "score_samples": 3})
    x = data["test"].x[:5]
    method.net.eval()
    with torch.no_grad():
        mu, logvar = method.net.posterior(x)
        noise = torch.randn((3, 4, 1, 1), generator=torch.Generator().manual_seed(0))
        rec = torch.stack(
            [((x - method.net.decoder(mu + torch.exp(0.5 * logvar) * e)) ** 2).flatten(1).sum(1) for e in noise]
        ).mean(0)
        nll = 0.5 * 1024 * math.log(2 * math.pi) + 1024 * math.log(0.5) + rec / (2 * 0.25)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)
    np.testing.assert_allclose(method.score(ImageSet(x, np.zeros(5), np.arange(5))), (nll + kl).numpy(), rtol=1e-5)


# --- AlexNet features ---


def test_alexnet_variants_raise_a_clear_error_without_weights(data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty cache
    for cls in (KDEAlexNet, OCSVMAlexNet):
        method = make(cls, seed=0)
        with pytest.raises(WeightsUnavailable) as err:
            method.fit(data["train"], data["val"])
        message = str(err.value)
        assert "\n" not in message and "alexnet-owt-7be5be79.pth" in message
        assert str(tmp_path / "torch_home") in message and "download" in message
    assert issubclass(WeightsUnavailable, RuntimeError)


def test_alexnet_failed_download_raises_the_same_error(data, tmp_path, monkeypatch):
    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    method = make(KDEAlexNet, seed=0, weights_dir=str(tmp_path), download=True)
    with pytest.raises(WeightsUnavailable, match="could not be downloaded .*URLError"):
        method.fit(data["train"], data["val"])


def test_alexnet_feature_path_runs_with_stand_in_weights(data, monkeypatch):
    """The whole kde_alexnet path, with a randomly initialised AlexNet standing in for the ImageNet one."""
    import torchvision

    torch.manual_seed(0)
    monkeypatch.setattr(alexnet, "load_alexnet", lambda weights_dir, download: torchvision.models.alexnet().eval())
    few = {
        "train": ImageSet(data["train"].x[:24], data["train"].labels[:24], data["train"].index[:24]),
        "val": ImageSet(data["val"].x[:6], data["val"].labels[:6], data["val"].index[:6]),
    }
    method = fitted(OCSVMAlexNet, few, seed=0, pca_sizes=[8])
    assert method.model["pca"].mean_.shape == (9216,)
    assert method.selected()["pca_size"] == 8
    assert np.all(
        np.isfinite(
            method.score(ImageSet(data["test"].x[55:65], data["test"].labels[55:65], data["test"].index[55:65]))
        )
    )


# --- params: each method's own rules (that every field refuses junk is the contract test's) ---


@pytest.mark.parametrize(
    "cls, key, value",
    [
        (OCSVM, "nu", 1.5),
        (OCSVM, "gamma", "auto"),
        (OCSVM, "pca_criterion", "detector"),
        (KDE, "pca_sizes", [-20]),
        (KDE, "pca_sizes", [20.5]),
        (KDE, "bandwidths", [0, 1]),
        (KDE, "cv_folds", 1),
        (GMM, "components", [0, 2]),
        (GMM, "covariance_type", "dense"),
        (VAE, "obs_std", -1.0),
        (VAE, "obs_std", "learned"),
    ],
    ids=lambda v: str(v) if not isinstance(v, type) else v.name,
)
def test_method_specific_rules_refuse_values_by_name(cls, key, value):
    with pytest.raises(ParamsError, match=rf"methods\.{cls.name}\.{key} = "):
        parse(cls.Config, {key: value}, f"methods.{cls.name}")


def test_valid_edge_params_are_accepted():
    assert parse(OCSVM.Config, {"nu": 1}, "m").nu == 1
    assert parse(KDE.Config, {"max_train": None, "pca_criterion": "ppca"}, "m").max_train is None
    assert parse(VAE.Config, {"obs_std": 0.1}, "m").obs_std == 0.1
    defaults = parse(KDEAlexNet.Config, {}, "m")
    assert defaults.pca_sizes == PAPER_PCA_SIZES and defaults.download is False
    assert defaults.model_dump()["bandwidths"] == PAPER_BANDWIDTHS
