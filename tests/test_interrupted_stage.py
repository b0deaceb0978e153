"""A stage killed with SIGKILL and run again ends exactly as an uninterrupted one.

The stage runs as its own process (as `dvc repro` runs it), one job after another or with two
jobs in flight in the local pool, is killed in the middle of a class, its outputs are deleted (as
DVC does before a rerun) and it is run again: model files must be byte-identical to an
uninterrupted run's, so nothing downstream reruns, and the training curves must hold every epoch
of every class. The pool's workers die with the stage; a scoring stage killed with jobs in flight
leaves no score file.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, prepare_data

ARGS = ["--dataset", "mnist", "--protocol", "leave_one_class_out", "--method", "dcae"]
EPOCHS = 8


def train_process(cwd, stage="train_score"):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py"), *ARGS],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def children(pid):
    """The pool's worker processes (Linux's /proc)."""
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def kill_and_check_workers_die(run):
    workers = children(run.pid)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 10
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "pool workers outlived the killed stage"
    return workers


def set_executor(folder, **executor):
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["executor"] = {"threads": 1, **executor}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("executor", [{"kind": "serial"}, {"kind": "local", "jobs": 2}], ids=["serial", "local"])
def test_sigkill_mid_stage_then_rerun_gives_identical_models_and_complete_curves(workspace, tmp_path, executor):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["methods"]["dcae"].update(epochs=EPOCHS, batch_size=64)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    set_executor(workspace, **executor)
    prepare_data("leave_one_class_out")
    reference = tmp_path / "reference"
    shutil.copytree(workspace, reference)

    # uninterrupted
    done = train_process(reference)
    assert done.wait(timeout=300) == 0, done.stdout.read()

    # killed in the middle of class 3 (its checkpoint holds an epoch or more, not all of them)
    run = train_process(workspace)
    checkpoint = workspace / "data/checkpoints/mnist/leave_one_class_out/dcae/seed0/class3.safetensors"
    log = workspace / "reports/training/mnist/leave_one_class_out/dcae/seed0/class3/plots/metrics/train_loss.tsv"
    deadline = time.time() + 300
    # an epoch ends by saving the checkpoint, then logging its curves: wait for both (a loaded machine can sit
    # between the two)
    while not (checkpoint.exists() and log.exists()) and time.time() < deadline and run.poll() is None:
        time.sleep(0.02)
    workers = kill_and_check_workers_die(run)
    assert len(workers) == (2 if executor["kind"] == "local" else 0)
    assert run.returncode == -signal.SIGKILL, "the stage ended before it could be killed mid-class"
    assert len(log.read_text().splitlines()) - 1 < EPOCHS  # really cut short

    shutil.rmtree(
        workspace / "models", ignore_errors=True
    )  # what DVC does to a stage's outputs before it runs it again
    again = train_process(workspace)
    assert again.wait(timeout=300) == 0, again.stdout.read()

    models = "models/mnist/leave_one_class_out/dcae"
    assert files(workspace / models) == files(reference / models) and files(workspace / models)
    curves = "reports/training/mnist/leave_one_class_out/dcae"
    assert files(workspace / curves) == files(reference / curves)
    table = "reports/curves/mnist_leave_one_class_out_dcae.csv"
    assert (workspace / table).read_bytes() == (reference / table).read_bytes()
    for cls in (0, 3):
        lines = (workspace / curves / f"seed0/class{cls}/plots/metrics/val_score.tsv").read_text().splitlines()
        assert [line.split("\t")[0] for line in lines[1:]] == [str(e) for e in range(EPOCHS)]


def test_sigkill_while_scoring_jobs_are_in_flight_leaves_no_score_file(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"]["seeds"] = [0, 1, 2]
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    prepare_data("leave_one_class_out")
    assert train_process(workspace).wait(timeout=300) == 0
    set_executor(workspace, kind="local", score_jobs=2)
    out = workspace / "data/scores/mnist/leave_one_class_out"
    shutil.rmtree(out)  # what DVC does to a stage's outputs before it runs it again: the score stage starts bare

    run = train_process(workspace, "score")
    deadline = time.time() + 60
    while len(children(run.pid)) < 2 and time.time() < deadline and run.poll() is None:
        time.sleep(0.01)
    kill_and_check_workers_die(run)
    assert run.returncode == -signal.SIGKILL, "scoring ended before it could be killed"
    assert not out.exists() or not any(out.iterdir()), "a killed scoring stage left a score file"

    again = train_process(workspace, "score")
    assert again.wait(timeout=300) == 0, again.stdout.read()
    scores = (out / "dcae.csv").read_text().splitlines()
    assert len(scores) > 100 and {line.split(",")[1] for line in scores[1:]} == {"0", "1", "2"}
