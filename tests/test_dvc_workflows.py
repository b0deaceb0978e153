"""The DVC-native ways to share and parallelise work, on a copy of this project (tiny data, one method).

- A second clone gets the first one's results from a shared remote with the run-cache
  (`dvc push --run-cache`, then `dvc pull --run-cache && dvc repro`) and trains nothing.
- Two `dvc repro` at once in one workspace: DVC's lock refuses the second ("... is busy, it is
  being blocked by: (PID ...)"), and the first ends with an up-to-date workspace.
- `dvc exp run --queue` and `dvc queue start -j 2` run a sweep of `-S` overrides, composed by Hydra.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

TARGET = "train_score@mnist-one_class_normal-dcae"
PROJECT_FILES = ("dvc.yaml", "params.yaml", "conf", "stages", "src", ".dvc/config", ".dvc/plots", ".dvcignore")


# the stages' `python` and DVC's queue workers must be this environment's, activated or not
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def dvc(cwd, *args, check=True, **popen):
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, env=ENV, **popen
    )
    if check:
        assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_project(folder, tiny_npz, epochs=2):
    """This project's pipeline, code and params, on tiny data with DCAE alone, as a git + DVC repository."""
    folder.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        (
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            if source.is_dir()
            else (folder / name).parent.mkdir(parents=True, exist_ok=True) or shutil.copy(source, folder / name)
        )
    # the tiny run is the copy's default profile, so that `dvc exp run -S` composes it as `dvc repro` reads it
    tiny = {
        "run": {"classes": [0, 3], "methods": ["dcae"], "seeds": [0], "audit_protocols": []},
        "executor": {"kind": "serial", "threads": 1},
        "brain": {"methods": ["dcae"]},
        "model": {"method": "dcae"},
        "data": {"mnist": {"source": "npz", "npz_path": str(tiny_npz), "download": False}},
        "methods": {"dcae": {"width": 8, "epochs": epochs, "batch_size": 32, "lr": 0.002}},
    }
    (folder / "conf/profile/default.yaml").write_text("# @package _global_\n" + yaml.safe_dump(tiny))
    subprocess.run([sys.executable, "-m", "ganad.config.compose"], cwd=folder, check=True)
    git(folder, "init", "-q")
    git(folder, "config", "user.email", "test@ganad.invalid")
    git(folder, "config", "user.name", "ganad tests")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "project")
    return folder


@pytest.fixture
def project(tmp_path, tiny_mnist):
    tiny_mnist.save(tmp_path / "tiny.npz")
    return make_project(tmp_path / "first", tmp_path / "tiny.npz")


def test_a_second_clone_gets_results_from_the_run_cache_and_trains_nothing(project, tmp_path):
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "shared", str(remote))
    git(project, "commit", "-qam", "a shared remote")
    first = dvc(project, "repro", TARGET)
    assert "Running stage 'train_score@mnist-one_class_normal-dcae'" in first.stdout
    dvc(project, "push", "--run-cache")

    # the second clone has the code and params, not dvc.lock nor any output
    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(project), str(second))
    assert not (second / "dvc.lock").exists() and not (second / "models").exists()
    dvc(second, "pull", "--run-cache", "--allow-missing")  # this clone has no dvc.lock: nothing else to check out
    again = dvc(second, "repro", "--pull", TARGET)  # --pull: the run-cache entries' outputs from the remote
    assert "Running stage" not in again.stdout, again.stdout
    assert "Stage 'train_score@mnist-one_class_normal-dcae' is cached - skipping run" in again.stdout
    for path in (
        "models/mnist/one_class_normal/dcae/seed0/class3.safetensors",
        "data/scores/mnist/one_class_normal/dcae.csv",
    ):
        assert (second / path).read_bytes() == (project / path).read_bytes()


def test_a_second_repro_in_the_same_workspace_is_refused_by_dvc_s_lock(project):
    slow = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", TARGET],
        cwd=project,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    configured = project / "data/config/mnist/dcae.json"  # the stage before training has run
    deadline = time.time() + 120
    while slow.poll() is None and time.time() < deadline and not configured.exists():
        time.sleep(0.05)
    assert slow.poll() is None, "the first repro ended before the second could start"
    second = dvc(project, "repro", TARGET, check=False)
    assert second.returncode != 0
    # DVC's lock on the files the first run is writing: "... is busy, it is being blocked by: (PID ...)"
    assert "is busy, it is being blocked by" in second.stderr, second.stderr
    assert slow.wait(timeout=300) == 0, slow.stdout.read()
    status = dvc(project, "status", TARGET)
    assert "up to date" in status.stdout, status.stdout


def test_a_queued_sweep_runs_each_override_as_an_experiment(project):
    for epochs in (1, 3):
        dvc(project, "exp", "run", "--queue", TARGET, "-S", f"methods.dcae.epochs={epochs}")
    # the queue's workers outlive this call: their output goes to a file, not to a pipe we would wait on
    with open(project / "queue.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
            cwd=project,
            env=ENV,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 300
    while time.time() < deadline:
        status = dvc(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = csv.DictReader(io.StringIO(dvc(project, "exp", "show", "--csv").stdout))
    assert {row["methods.dcae.epochs"] for row in shown} >= {"1", "3"}


def test_a_collection_added_to_rank_collections_is_scored_by_the_trained_model_without_retraining(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["rank"].update(method="dcae", collections={"mixed": "data/demo/rank/mixed"})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    first = dvc(project, "repro", "rank_score@mixed").stdout
    assert "Running stage 'rank_train'" in first
    # new images: a folder of its own, named in rank.collections
    shutil.copytree(project / "data/demo/rank/flat", project / "new_images")
    params["rank"]["collections"]["new_images"] = "new_images"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    second = dvc(project, "repro", "rank_score@new_images").stdout
    assert "Running stage 'rank_score@new_images'" in second and "Running stage 'rank_train'" not in second
    assert (project / "reports/ranking/new_images/scores.csv").read_text().startswith("path,score,rank,p_value,flagged")
    assert "rank_score@mixed" not in dvc(project, "status").stdout  # the other collection's results still stand


def test_the_committed_lock_records_only_stages_the_pipeline_defines():
    """dvc.lock keeps the entry of a stage removed from dvc.yaml until someone deletes it; such an entry
    names outputs no stage writes any more and misleads whoever reads the lock."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        defined = {stage.name for stage in repo.index.stages}
    recorded = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert recorded - defined == set(), "entries of stages dvc.yaml no longer defines: delete them from dvc.lock"


def test_no_cached_stage_output_of_any_method_is_tracked_by_git():
    """A cached output folder that git tracks stops `dvc repro` ('already tracked by SCM'): whatever methods
    brain.methods or run.methods name, their training logs, models and scores must not be in git (the ranking
    study's training log is a `cache: false` plot, in git on purpose)."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "reports/training", "models", "data"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    stray = [f for f in tracked if not f.endswith(".gitignore") and not f.startswith("reports/training/ranking/")]
    assert stray == [], f"cached stage outputs tracked by git: {stray[:5]}; `git rm -r --cached` them"
