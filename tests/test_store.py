"""Model files and checkpoints hold tensors and plain data only: nothing we load can run code."""

import os
import pickle

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from ganad.runtime import store

from conftest import invoke, prepare_data, stage


class Payload:
    """A pickle that runs a shell command when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"method": "dcae", "state": Payload(marker)}))
    pickle.loads(path.read_bytes())  # the planted file is a live exploit for anything that unpickles it
    assert os.path.exists(marker)
    os.remove(marker)


def test_a_tree_round_trips_exactly_and_deterministically(tmp_path):
    tree = {
        "w": torch.arange(6.0).view(2, 3).t(),
        "opt": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.5, 0.9), "params": [0]}]},
        "blob": b"\x00\x01",
        "arr": np.arange(3),
        "nan": float("nan"),
        "none": None,
        "nested": [1, "a", True],
    }
    store.save(tmp_path / "a", tree)
    store.save(tmp_path / "b", tree)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    back = store.load(tmp_path / "a")
    assert torch.equal(back["w"], tree["w"]) and back["opt"]["state"][0]["step"] == 3
    assert back["opt"]["param_groups"][0]["betas"] == (0.5, 0.9) and back["blob"] == b"\x00\x01"
    assert np.array_equal(back["arr"], tree["arr"]) and np.isnan(back["nan"]) and back["nested"] == [1, "a", True]
    with pytest.raises(TypeError, match="cannot store a Payload"):
        store.save(tmp_path / "c", {"x": Payload("never")})


@pytest.mark.parametrize("content", [b"", b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":', b"not a file at all"])
def test_truncated_or_foreign_files_are_refused_by_name(tmp_path, content):
    (tmp_path / "m").write_bytes(content)
    with pytest.raises(store.StoreError, match=r"'.*m' is not a ganad model or checkpoint file"):
        store.load(tmp_path / "m")


def test_score_stage_refuses_a_planted_pickle_and_runs_nothing(workspace, tmp_path):
    prepare_data("one_class_normal")
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    scores = workspace / "data/scores/mnist/one_class_normal/dcae.csv"
    good_scores = scores.read_bytes()
    marker = tmp_path / "pwned"
    plant(workspace / "models/mnist/one_class_normal/dcae/seed0/class0.safetensors", marker)
    result = CliRunner().invoke(
        stage("score"), ["--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae"]
    )
    assert result.exit_code != 0
    message = str(result.exception)
    assert "class0.safetensors' is not a ganad model" in message and "nothing in it was run" in message
    assert "dvc repro -f -s train_score@mnist-one_class_normal-dcae" in message
    assert not marker.exists()
    assert scores.read_bytes() == good_scores  # the good model's scores stay; nothing partial replaced them


@pytest.mark.parametrize("kind", ["pickle", "truncated", "other_version"])
def test_training_starts_over_from_a_bad_checkpoint(workspace, tmp_path, kind):
    prepare_data("one_class_normal")
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    model = workspace / "models/mnist/one_class_normal/dcae/seed0/class0.safetensors"
    good = model.read_bytes()
    checkpoint = workspace / "data/checkpoints/mnist/one_class_normal/dcae/seed0/class0.safetensors"
    marker = tmp_path / "pwned"
    if kind == "pickle":
        plant(checkpoint, marker)
    elif kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        tree = store.load(checkpoint)
        tree["state"] = {"nets": {"net": {"weight": torch.zeros(2)}}}  # a layout this code does not know
        store.save(checkpoint, tree)
    model.unlink()
    result = CliRunner().invoke(
        stage("train_score"), ["--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae"]
    )
    assert result.exit_code == 0, result.output
    assert "training starts over" in result.stderr
    assert "0/2" in result.stderr or "0/2" in result.output  # trained from the first epoch
    assert model.read_bytes() == good  # retrained from scratch: the same model as before
    assert not marker.exists()


def test_bad_params_in_a_method_section_stop_the_configure_stage(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["methods"]["dcae"]["lr"] = -1
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    invoke("fetch", "--dataset", "mnist")
    invoke("preprocess", "--dataset", "mnist")  # configure reads the channel count from the prepared meta
    result = CliRunner().invoke(stage("configure"), ["--dataset", "mnist"])
    assert result.exit_code != 0 and "methods.dcae.lr = -1 is invalid: must be a finite number > 0" in str(
        result.exception
    )
    assert not (workspace / "data/config").exists()
