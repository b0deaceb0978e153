"""Every executor writes the same files; a failing job names itself; optional engines say what to install."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

from ganad.config.executor import ExecutorParams
from ganad.config.params import load_params
from ganad.errors import ParamsError
from ganad.runtime import executors
from ganad.runtime.executors import JobFailed, map_jobs
from ganad.schema import parse

from conftest import invoke, prepare_data

OUTPUTS = ("models", "data/scores", "reports/curves", "reports/training", "reports/metrics")


def files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_stages(workspace, executor: dict) -> dict:
    """Train, score and evaluate DCAE (two classes x two seeds: four jobs) on `executor`; every output file's
    bytes."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["executor"] = {"threads": 1, **executor}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    for folder in OUTPUTS + ("data/checkpoints",):
        shutil.rmtree(workspace / folder, ignore_errors=True)  # retrain and rescore, not resume
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    invoke("evaluate", "--dataset", "mnist", "--protocol", "one_class_normal")
    out = {}
    for folder in OUTPUTS:
        out.update({f"{folder}/{name}": data for name, data in files(workspace / folder).items()})
    return out


@pytest.fixture
def four_jobs(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"]["seeds"] = [0, 1]
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    prepare_data("one_class_normal")
    return workspace


def test_serial_local_and_slurm_write_byte_identical_models_scores_and_curves(four_jobs):
    reference = run_stages(four_jobs, {"kind": "serial"})
    assert sum(name.endswith(".safetensors") for name in reference) == 4
    assert "reports/metrics/mnist_one_class_normal.json" in reference
    local = run_stages(four_jobs, {"kind": "local", "jobs": 2, "score_jobs": 2})
    assert local.keys() == reference.keys()
    assert [name for name in reference if local[name] != reference[name]] == []
    # submitit's local executor: each job a process of its own, as on Slurm
    slurm = run_stages(
        four_jobs, {"kind": "slurm", "slurm": {"cluster": "local", "folder": "data/slurm", "cpus_per_job": 1}}
    )
    assert [name for name in reference if slurm[name] != reference[name]] == []
    assert list((four_jobs / "data/slurm").rglob("*_log.out"))  # submitit's job logs, where the docs say


def test_ray_writes_the_same_files_as_serial(four_jobs):
    ray = pytest.importorskip("ray")
    reference = run_stages(four_jobs, {"kind": "serial"})
    try:
        on_ray = run_stages(four_jobs, {"kind": "ray", "ray": {"address": "local", "cpus_per_job": 1}})
    finally:
        ray.shutdown()
    assert [name for name in reference if on_ray[name] != reference[name]] == []


def record_or_fail(params, folder, key):
    """A job that leaves a file and fails on class 3 of seed 1."""
    if key == (3, 1):
        raise ValueError("class 3 of seed 1 has no images")
    Path(folder, f"{key[0]}-{key[1]}").write_text("done")
    return key


KEYS = [(cls, seed) for seed in (0, 1) for cls in (0, 3)]


@pytest.mark.parametrize("kind", ["serial", "local", "slurm"])
def test_a_failing_job_fails_with_its_key_and_traceback_and_the_others_work_stays(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == "slurm":  # submitit's job process imports functions by name; this test module is not installed
        import sys

        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = parse(ExecutorParams, {"kind": kind, "jobs": 2, "threads": 1, "slurm": {"cluster": "local"}}, "executor")
    with pytest.raises(JobFailed) as failure:
        map_jobs(executor, record_or_fail, None, (str(tmp_path),), KEYS, jobs=2, device="cpu")
    message = str(failure.value)
    assert "(3, 1)" in message and "class 3 of seed 1 has no images" in message
    assert "Traceback" in message and "record_or_fail" in message
    assert {p.name for p in tmp_path.glob("*-*")} == {"0-0", "3-0", "0-1"}  # the jobs before it finished


def fail_on_purpose(params, folder, key):
    """A job that stops with a message of its own (a StageError) on class 3 of seed 1."""
    from ganad.errors import DataError

    if key == (3, 1):
        raise DataError("'x.npz' is truncated; rebuild it with `dvc repro -f -s split@x-y`")
    return key


@pytest.mark.parametrize("kind", ["serial", "local", "slurm"])
def test_a_job_stopped_on_purpose_fails_with_its_key_and_message_alone(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == "slurm":
        import sys

        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = parse(ExecutorParams, {"kind": kind, "jobs": 2, "threads": 1, "slurm": {"cluster": "local"}}, "executor")
    with pytest.raises(JobFailed) as failure:
        map_jobs(executor, fail_on_purpose, None, (str(tmp_path),), KEYS, jobs=2, device="cpu")
    message = str(failure.value)
    assert message.startswith("job (3, 1) (fail_on_purpose ") and "rebuild it with `dvc repro" in message, message
    assert "Traceback" not in message and "\n" not in message, message
    monkeypatch.setenv("GANAD_DEBUG", "1")
    if kind != "slurm":  # submitit's job processes do not see this process's environment changes
        with pytest.raises(JobFailed, match="the job's traceback"):
            map_jobs(executor, fail_on_purpose, None, (str(tmp_path),), KEYS, jobs=2, device="cpu")


def test_results_come_back_in_key_order_whatever_finishes_first(tmp_path):
    executor = parse(ExecutorParams, {"kind": "local", "jobs": 2, "threads": 1}, "executor")
    keys = [(cls, 0) for cls in (9, 1, 5, 0, 7)]
    assert map_jobs(executor, echo_key, None, (), keys, jobs=2, device="cpu") == keys


def echo_key(params, key):
    import time

    time.sleep(0.05 * (key[0] % 3))
    return key


def test_processes_auto_is_one_per_core_or_one_per_gpu_never_more_than_the_jobs(monkeypatch):
    monkeypatch.setattr(executors, "cores", lambda: 4)
    monkeypatch.setattr(executors, "gpu_count", lambda device: 0)
    assert executors.processes("auto", "cpu", 10) == 4
    assert executors.processes("auto", "cpu", 3) == 3
    assert executors.processes(2, "cpu", 1) == 1
    assert executors.threads_per_job("auto", 4) == 1 and executors.threads_per_job("auto", 1) == 4
    monkeypatch.setattr(executors, "gpu_count", lambda device: 2)
    assert executors.processes("auto", "auto", 10) == 2


@pytest.mark.parametrize("kind, module, extra", [("slurm", "submitit", "slurm"), ("ray", "ray", "ray")])
def test_a_missing_engine_names_the_extra_to_install(kind, module, extra, monkeypatch):
    real_import = executors.importlib.import_module

    def no_such_module(name, *args):
        if name == module:
            raise ModuleNotFoundError(f"No module named '{module}'")
        return real_import(name, *args)

    monkeypatch.setattr(executors.importlib, "import_module", no_such_module)
    with pytest.raises(ParamsError, match=rf"pip install -e '\.\[{extra}\]'"):
        map_jobs(parse(ExecutorParams, {"kind": kind}, "executor"), echo_key, None, (), [(0, 0)])


def test_the_old_worker_settings_name_their_replacement(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"]["workers"] = 2
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="executor.jobs: 2"):
        load_params()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux")
def test_cores_counts_this_process_s_cpus():
    assert executors.cores() == len(os.sched_getaffinity(0))


def current_gpu(params, key):
    import time

    import torch

    time.sleep(0.5)  # long enough that every worker takes a job
    return torch.cuda.current_device()


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available() or __import__("torch").cuda.device_count() < 2,
    reason="needs two CUDA GPUs",
)
def test_the_local_pool_pins_one_process_to_each_gpu():
    import torch

    executor = parse(ExecutorParams, {"kind": "local"}, "executor")
    devices = map_jobs(
        executor,
        current_gpu,
        None,
        (),
        [(c, 0) for c in range(2 * torch.cuda.device_count())],
        jobs="auto",
        device="auto",
    )
    assert set(devices) == set(range(torch.cuda.device_count()))
