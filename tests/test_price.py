"""Pricing a run before it trains (ganad.engine.price) and the configure stage's stop above executor.max_hours."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ganad.config.params import parse_params
from ganad.engine.price import check_time_limit, estimate, markdown
from ganad.errors import ParamsError
from ganad.runtime import layout

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A prepared dataset of 3 classes (60 training-pool and 30 test images each) and params for two tiny
    network methods and one classical one."""
    monkeypatch.chdir(tmp_path)
    labels = np.concatenate([np.repeat(np.arange(3), 60), np.repeat(np.arange(3), 30)])
    folder = layout.prepared("mnist")
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", np.zeros((len(labels), 1, 32, 32), np.uint8))
    np.save(folder / "labels.npy", labels)
    meta = {"dataset": "mnist", "n_train": 180, "n_test": 90, "channels": 1, "size": 32, "classes": ["a", "b", "c"]}
    (folder / "meta.json").write_text(json.dumps(meta))
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["run"].update(methods=["dcae", "vae", "kde"], seeds=[0, 1])
    raw["model"]["method"] = "dcae"
    raw["brain"]["methods"] = ["dcae"]
    raw["rank"]["method"] = "dcae"
    for name in ("dcae", "vae"):
        raw["methods"][name].update(width=4, epochs=3, min_steps=0, batch_size=16)
    raw["executor"].update(kind="serial", threads=1)
    return raw


def test_the_estimate_counts_every_jobs_updates_and_test_images(workspace):
    params = parse_params(workspace)
    table = estimate(params, "mnist", probe_steps=1).set_index(["method", "protocol"])
    assert sorted(table.index.get_level_values("method").unique()) == ["dcae", "vae"]  # network methods only
    one_class = table.loc[("dcae", "one_class_normal")]
    # 3 classes x 2 seeds; one-class-normal trains 54 of a class's 60 images (val 10 %): 3 epochs of 4 batches
    assert one_class["jobs"] == 6 and one_class["updates per job"] == 12
    # every official test image (test_size 5000 > 90) and the 6 validation images the p-values calibrate on
    assert one_class["images scored per job"] == 90 + 6
    expected = 6 * 12 * one_class["s per update"] / 3600
    assert one_class["training h"] == pytest.approx(expected)
    assert one_class["wall h"] == pytest.approx(one_class["training h"] + one_class["scoring h"])  # serial
    # a scaled budget and a cut test split price that share
    workspace["run"]["budget_scale"] = 0.5
    workspace["split"]["test_max"] = 30
    cut = estimate(parse_params(workspace), "mnist", probe_steps=1).set_index(["method", "protocol"])
    assert cut.loc[("dcae", "one_class_normal"), "updates per job"] == 6
    assert cut.loc[("dcae", "one_class_normal"), "images scored per job"] == 30 + 6
    assert "Total:" in markdown(cut.reset_index())


def test_a_run_over_max_hours_stops_naming_the_estimate_and_the_fixes(workspace):
    workspace["executor"]["max_hours"] = 1e-9
    params = parse_params(workspace)
    table = estimate(params, "mnist", probe_steps=1)
    with pytest.raises(ParamsError, match=r"executor\.max_hours = 1e-09.*run\.budget_scale.*max_hours: null"):
        check_time_limit(params, "mnist", table)
    workspace["executor"]["max_hours"] = 1000
    check_time_limit(parse_params(workspace), "mnist", table)  # within the limit: nothing to say


def test_the_configure_stage_stops_before_writing_any_config_when_the_run_cannot_finish(workspace):
    command = [sys.executable, str(ROOT / "stages" / "configure.py"), "--dataset", "mnist"]
    workspace["executor"]["max_hours"] = 1e-9
    Path("params.yaml").write_text(yaml.safe_dump(workspace))
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and "executor.max_hours" in result.stderr and "Traceback" not in result.stderr
    assert not layout.method_config("mnist", "dcae").exists()
    workspace["executor"]["max_hours"] = None
    Path("params.yaml").write_text(yaml.safe_dump(workspace))
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert layout.method_config("mnist", "dcae").is_file()
