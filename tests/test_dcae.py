import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ganad.device import seed_everything
from ganad.methods.dcae import DCAE, DCAEConfig
from ganad.training import TrainingDiverged, TrainingRun


def make(epochs=6, **kw):
    seed_everything(0)
    return DCAE(DCAEConfig(latent_dim=8, width=8, epochs=epochs, batch_size=32, lr=2e-3, **kw), 1, torch.device("cpu"))


def test_loss_falls_and_easy_anomalies_score_high(easy):
    train, val, test = easy
    model = make()
    run = TrainingRun(None, "t")
    model.fit(train, val, run)
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < 0.5 * losses[0]
    assert roc_auc_score(test.labels, model.score(test)) > 0.9


def test_resume_equals_uninterrupted(easy, tmp_path):
    train, val, _ = easy
    full = make(epochs=3)
    full.fit(train, val, TrainingRun(None, "t"))

    first = make(epochs=1)
    first.fit(train, val, TrainingRun(tmp_path / "ck.pt", "same"))
    resumed = make(epochs=3)
    torch.manual_seed(123)  # resume must restore the RNG, not rely on the caller's state
    run = TrainingRun(tmp_path / "ck.pt", "same")
    resumed.fit(train, val, run)
    assert [h["epoch"] for h in run.history] == [0, 1, 2]
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_of_other_params_is_not_resumed(easy, tmp_path):
    train, val, _ = easy
    make(epochs=1).fit(train, val, TrainingRun(tmp_path / "ck.pt", "old"))
    assert TrainingRun(tmp_path / "ck.pt", "new").resume(make()) == 0


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(easy, tmp_path):
    train, val, _ = easy
    model = make(epochs=2)
    model.fit(train, val, TrainingRun(tmp_path / "ck.pt", "fp"))
    saved = (tmp_path / "ck.pt").read_bytes()
    train.x[5] = float("nan")
    longer = make(epochs=4)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step \d+; the last good checkpoint stays"):
        longer.fit(train, val, TrainingRun(tmp_path / "ck.pt", "fp"))
    assert (tmp_path / "ck.pt").read_bytes() == saved


def test_same_seed_same_scores_and_save_load(easy, tmp_path):
    train, val, test = easy
    a = make(epochs=2)
    a.fit(train, val, TrainingRun(None, "t"))
    b = make(epochs=2)
    b.fit(train, val, TrainingRun(None, "t"))
    np.testing.assert_array_equal(a.score(test), b.score(test))
    a.save(tmp_path / "m.pt")
    loaded = DCAE.load(tmp_path / "m.pt", torch.device("cpu"))
    np.testing.assert_array_equal(loaded.score(test), a.score(test))
