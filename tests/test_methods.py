"""The contract every registered method meets, one test per property, parametrised over the registry.

A method added to `ganad.methods.REGISTRY` is covered here without a test of its own: it
fits the easy synthetic set (blobs normal, inverted blobs anomalous) and separates it, save/load
gives identical scores, every params field refuses bad values by name, the same seed
gives identical scores on the CPU, and a network method resumes bit-identically after
an interruption (weights, model file, curves) and stops on a NaN loss.
"""

import math

import numpy as np
import pytest
import torch
import torchvision
import yaml
from sklearn.metrics import roc_auc_score

from ganad.config.compose import compose
from ganad.data.images import ImageSet
from ganad.errors import ParamsError
from ganad.methods import REGISTRY, config_class, method_class
from ganad.methods.common.training import NeuralMethod
from ganad.methods.common.training_run import TrainingDiverged, TrainingRun
from ganad.methods.configs import NetConfig
from ganad.runtime import store
from ganad.runtime.device import seed_everything
from ganad.schema import parse

from conftest import ROOT, inverted_blob_sets

CPU = torch.device("cpu")
NAMES = sorted(REGISTRY)
NEURAL = [n for n in NAMES if issubclass(config_class(n), NetConfig)]

# Budgets that make each method learn the easy set in a second or two (on top of the smoke profile).
TWEAKS = {
    "adae": {"lr": 5e-4, "batch_size": 16, "epochs": 4},
    "adgan": {"lr": 5e-4, "n_critic": 2, "n_seed": 4, "k": 3, "val_images": 2},
    "vae": {"lr": 2e-3, "epochs": 6, "score_samples": 2},
    "cevae": {"lr": 2e-3, "epochs": 4},
    "dcae": {"lr": 2e-3, "epochs": 4},
    "anogan": {"lr": 1e-3, "epochs": 4, "search_steps": 20, "search_lr": [[1.0, 0.05]], "val_images": 2},
    "ganomaly": {"lr": 1e-3, "epochs": 10},
    "egbad": {"lr": 1e-3, "epochs": 10, "d_hidden": 64, "z_hidden": 32, "ema_decay": 0.5},
    "igmm_gan": {"lr": 1e-3, "epochs": 10, "d_hidden": 64, "z_hidden": 32, "components": 4},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("params") / "params.yaml"
    compose(out, ["profile=smoke"], ROOT)
    return yaml.safe_load(out.read_text())["methods"]


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
    """Stand-in AlexNet weights (seeded random) where the real ImageNet file would be: the feature path runs
    offline; with random filters the features still tell discs from bars."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), folder / "alexnet-owt-7be5be79.pth")
    return str(folder)


@pytest.fixture(scope="module")
def sections(smoke, alexnet_weights):
    def section(name: str) -> dict:
        s = dict(smoke.get(name) or {})
        fields = config_class(name).model_fields
        if issubclass(config_class(name), NetConfig):
            s.update(latent_dim=16, width=8, batch_size=32, epochs=3, min_steps=0)
        if "weights_dir" in fields:
            s.update(weights_dir=alexnet_weights, max_train=128)
        if "seed" in fields and not issubclass(config_class(name), NetConfig):
            s["seed"] = 0
        s.update(TWEAKS.get(name, {}))
        return s

    return section


@pytest.fixture(scope="module")
def easy():
    return inverted_blob_sets()


def build(name: str, section: dict, seed: int = 0):
    seed_everything(seed)
    cls = method_class(name)
    return cls(parse(cls.Config, section, f"methods.{name}"), 1, CPU)


@pytest.fixture(scope="module")
def fitted(sections, easy):
    """One fit per method (seed 0), shared by the tests that only read it."""
    cache = {}

    def get(name):
        if name not in cache:
            method = build(name, sections(name))
            run = TrainingRun(None, "contract")
            method.fit(easy[0], easy[1], run)
            cache[name] = (method, run)
        return cache[name]

    return get


# --- every method ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fits_the_easy_set_and_separates_it(name, fitted, easy):
    method, run = fitted(name)
    test = easy[2]
    scores = method.score(test)
    assert scores.dtype == np.float64 and scores.shape == (len(test),) and np.all(np.isfinite(scores))
    assert roc_auc_score(test.labels, scores) > 0.85
    assert run.history and all(math.isfinite(v) for h in run.history for k, v in h.items() if k != "val_score")
    assert method.score(ImageSet(test.x[:0], test.labels[:0], test.index[:0])).shape == (0,)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_gives_identical_scores_and_bytes(name, fitted, easy, tmp_path):
    method, _ = fitted(name)
    method.save(tmp_path / "a.safetensors")
    method.save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    loaded = method_class(name).load(tmp_path / "a.safetensors", CPU)
    assert loaded.config == method.config and loaded.selected() == method.selected()
    np.testing.assert_array_equal(loaded.score(easy[2]), method.score(easy[2]))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_scores(name, sections, fitted, easy):
    again = build(name, sections(name))
    again.fit(easy[0], easy[1])
    np.testing.assert_array_equal(again.score(easy[2]), fitted(name)[0].score(easy[2]))


JUNK = ["not-a-value", -1, 0, 2.5, True, float("nan"), [], None]


@pytest.mark.parametrize("name", NAMES)
def test_every_params_field_refuses_bad_values_by_name(name):
    config = config_class(name)
    with pytest.raises(ParamsError, match=rf"methods\.{name}: unknown key\(s\) \['no_such_key'\]"):
        parse(config, {"no_such_key": 1}, f"methods.{name}")
    assert config.model_fields, name
    for field in config.model_fields:
        refused = 0
        for value in JUNK:
            try:
                parse(config, {field: value}, f"methods.{name}")
            except ParamsError as exc:
                assert f"methods.{name}.{field} = " in str(exc) and "must be" in str(exc)
                assert "\n" not in str(exc)  # one line
                refused += 1
        assert refused, f"methods.{name}.{field} accepts every junk value {JUNK}"


# --- network methods ------------------------------------------------------------------------------


class Interrupted(TrainingRun):
    """Stops the run right after epoch `at` was checkpointed, as a kill would."""

    at = 0

    def end_epoch(self, method, epoch, metrics):
        super().end_epoch(method, epoch, metrics)
        if epoch == self.at:
            raise KeyboardInterrupt


def curves(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", NEURAL)
def test_resume_after_an_interruption_is_bit_identical(name, sections, easy, tmp_path):
    train, val, test = easy
    section = {**sections(name), "epochs": 3, "select": "best_val"}
    full = build(name, section)
    with TrainingRun(tmp_path / "full.ck", "fp", tmp_path / "full") as run:
        full.fit(train, val, run)
    with pytest.raises(KeyboardInterrupt), Interrupted(tmp_path / "cut.ck", "fp", tmp_path / "cut") as run:
        build(name, section).fit(train, val, run)
    resumed = build(name, section, seed=123)  # another init and RNG: resuming must restore both
    with TrainingRun(tmp_path / "cut.ck", "fp", tmp_path / "cut") as run:
        resumed.fit(train, val, run)
    full.save(tmp_path / "full.safetensors")
    resumed.save(tmp_path / "resumed.safetensors")
    assert (tmp_path / "full.safetensors").read_bytes() == (tmp_path / "resumed.safetensors").read_bytes()
    assert curves(tmp_path / "full") == curves(tmp_path / "cut")
    assert len((tmp_path / "cut" / "plots" / "metrics" / "val_score.tsv").read_text().splitlines()) == 1 + 3
    np.testing.assert_array_equal(full.score(test), resumed.score(test))


@pytest.mark.parametrize("name", NEURAL)
def test_a_nan_loss_stops_training_naming_epoch_and_step(name, sections, easy, tmp_path):
    train, val, _ = easy
    poisoned = ImageSet(torch.full_like(train.x, float("nan")), train.labels, train.index)
    with pytest.raises(TrainingDiverged, match=r"became nan at epoch 0, step 0; nothing was saved"):
        build(name, sections(name)).fit(poisoned, val)


class NanValidation(TrainingRun):
    """The validation score of epoch 1 becomes NaN, as a diverged model's does."""

    def check_validation(self, metrics, epoch, n_val):
        if epoch == 1:
            metrics["val_score"] = float("nan")
        super().check_validation(metrics, epoch, n_val)


@pytest.mark.parametrize("name", NEURAL)
def test_a_nan_validation_score_stops_training_keeping_the_last_checkpoint_and_the_previous_curves(
    name, sections, easy, tmp_path
):
    train, val, _ = easy
    log = tmp_path / "log"
    log.mkdir()
    (log / "metrics.json").write_text('{"of": "the previous run"}\n')
    with (
        pytest.raises(TrainingDiverged, match=r"validation score became nan at epoch 1 .*last good checkpoint stays"),
        NanValidation(tmp_path / "ck", "fp", log) as run,
    ):
        build(name, {**sections(name), "epochs": 3}).fit(train, val, run)
    assert store.load(tmp_path / "ck")["epoch"] == 0
    assert curves(log) == {"metrics.json": b'{"of": "the previous run"}\n'}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", NEURAL)
def test_network_methods_score_in_eval_mode(name, fitted, easy):
    method, _ = fitted(name)
    assert isinstance(method, NeuralMethod)
    method.score(ImageSet(easy[2].x[:4], easy[2].labels[:4], easy[2].index[:4]))
    assert not any(net.training for net in method.nets.values())


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(NEURAL)))
def test_feature_methods_resume_from_their_checkpoint(name, sections, easy, tmp_path):
    first = build(name, sections(name))
    first.fit(easy[0], easy[1], TrainingRun(tmp_path / "ck", "fp"))
    again = build(name, sections(name), seed=5)
    again.fit(easy[0], easy[1], TrainingRun(tmp_path / "ck", "fp"))
    np.testing.assert_array_equal(again.score(easy[2]), first.score(easy[2]))
    assert again.selected() == first.selected()


# --- on a GPU (skipped without one) -----------------------------------------------------------------

GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@GPU
@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_on_a_gpu_fits_separates_and_scores_like_its_saved_copy(name, sections, easy, tmp_path):
    """The device path: fit on CUDA, separate the easy set, and a model saved there scores the same on load."""
    cuda = torch.device("cuda")
    seed_everything(0)
    cls = method_class(name)
    method = cls(parse(cls.Config, sections(name), f"methods.{name}"), 1, cuda)
    method.fit(easy[0], easy[1])
    scores = method.score(easy[2])
    assert roc_auc_score(easy[2].labels, scores) > 0.85
    method.save(tmp_path / "m")
    again = cls.load(tmp_path / "m", cuda).score(easy[2])
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6)


class CountsUpdates(TrainingRun):
    """Counts the method's steps, as the convergence study does."""

    updates = 0

    def check_finite(self, losses, epoch, step):
        super().check_finite(losses, epoch, step)
        self.updates += 1


@pytest.mark.parametrize("name", NEURAL)
def test_the_budget_in_updates_is_the_steps_training_takes(name, sections, easy):
    # the results page places a run's budget on the convergence study's curves by `NeuralMethod.steps`
    train, val, _ = easy
    section = {**sections(name), "epochs": 1, "min_steps": 7}
    method = build(name, section)
    run = CountsUpdates(None, "count")
    method.fit(train, val, run)
    assert run.updates == method.steps(method.config, len(train)) >= 7


@pytest.mark.parametrize("name", NEURAL)
def test_a_scaled_budget_trains_that_share_of_the_updates_ending_part_way_through_an_epoch(name, sections, easy):
    train, val, _ = easy
    section = {**sections(name), "epochs": 1, "min_steps": 20}
    full = build(name, section)
    method = build(name, {**section, "budget_scale": 0.3})
    whole = full.steps(full.config, len(train))
    run = CountsUpdates(None, "count")
    method.fit(train, val, run)
    assert run.updates == method.steps(method.config, len(train)) == math.ceil(0.3 * whole)
    # every epoch begun is logged, the last one cut short
    assert len(run.history) == -(-run.updates // method.steps_per_epoch(method.config, len(train)))


@pytest.mark.parametrize("name", NEURAL)
def test_bf16_precision_trains_under_autocast_keeps_fp32_weights_and_still_separates_the_easy_set(name, sections, easy):
    assert build(name, sections(name)).config.precision == "fp32"  # the default
    method = build(name, {**sections(name), "precision": "bf16"})
    seen = []
    step = method.train_step

    def recorded(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return step(*args, **kwargs)

    method.train_step = recorded
    method.fit(easy[0], easy[1], TrainingRun(None, "bf16"))
    assert seen and all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)
    assert all(p.dtype == torch.float32 for net in method.nets.values() for p in net.parameters())
    test = easy[2]
    scores = method.score(test)  # scored outside autocast, in fp32
    assert scores.dtype == np.float64 and np.all(np.isfinite(scores))
    assert roc_auc_score(test.labels, scores) > 0.85
