"""Where a stage's jobs run: here one after another, in a process pool, as a Slurm job array, or on Ray.

A stage's jobs are independent calls `fn(params, *args, key)`, one per (class, seed) of one method,
dataset and protocol. Each job's seed, inputs and output paths come from its key alone, and the
results come back in key order, so the stage writes the same files whatever ran the jobs. The
executor is chosen by the `executor` section of params.yaml (`ExecutorParams`):

  serial   every job in the stage's own process, one after another;
  local    a process pool on this machine (the default): `jobs: auto` is one process per CPU core,
           or one per GPU with each process pinned to its own device;
  slurm    a Slurm job array through submitit (`slurm.cluster: local` or `debug` runs submitit's
           own local executors: what the tests use, and a dry run of a cluster set-up);
  ray      the tasks of an existing Ray cluster (`ray.address`), an optional extra.

Every job runs with `threads` torch / BLAS threads (`auto`: the cores shared out between the
jobs that run at once), and the numbers depend on that count alone, not on the executor: with
the same threads, `serial` and `local` write byte-identical models and scores (tests/test_executors.py).
The executor is not a DVC parameter of any stage: changing it reruns nothing.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ganad.errors import ParamsError, StageError

EXTRAS = {"submitit": "slurm", "ray": "ray"}  # optional module -> the pip extra that installs it


class JobFailed(StageError, RuntimeError):
    """One job of a stage failed; the message names its key and the error's own message, with the job's
    traceback when the error is not one ganad raises on purpose (a `StageError`) or GANAD_DEBUG=1."""


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_count(device: str) -> int:
    """GPUs the local pool shares its jobs between: every visible one under `auto`, none on the CPU,
    one for an explicit `cuda:N`."""
    from ganad.runtime.device import resolve_device

    if resolve_device(device).type != "cuda":
        return 0
    import torch

    return torch.cuda.device_count() if device == "auto" else 1


def processes(setting: int | str, device: str, n_jobs: int) -> int:
    """Local processes for `n_jobs` jobs: `setting`, or for `auto` one per GPU (each pinned to its own)
    or one per CPU core; never more than there are jobs."""
    if setting == "auto":
        setting = gpu_count(device) or cores()
    return max(1, min(int(setting), n_jobs))


def threads_per_job(setting: int | str, at_once: int) -> int:
    return max(1, cores() // at_once) if setting == "auto" else int(setting)


def set_threads(threads: int) -> None:
    """torch's threads, and BLAS / OpenMP threads for numpy and scikit-learn (whose pools would otherwise
    each take every core)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def _die_with_parent(parent: int) -> None:
    """A local worker is killed with the stage's process: a stage killed with SIGKILL must not leave
    workers that go on writing models and checkpoints under the rerun (Linux's PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the stage died before the line above: nothing would kill this worker
        os._exit(1)


def _start_worker(threads: int, gpus, parent: int) -> None:
    """A local worker: dies with the stage, its threads, and on a multi-GPU machine the GPU it takes
    from the queue."""
    _die_with_parent(parent)
    set_threads(threads)
    if gpus is not None:
        import torch

        torch.cuda.set_device(gpus.get())


def run_job(fn: Callable, params, args: tuple, key, threads: int | None = None, cwd: str | None = None):
    """fn(params, *args, key) in whatever process runs it. A failure becomes `JobFailed`, naming the job's
    key with the traceback as text, so the stage's error says which job failed wherever it ran."""
    if cwd is not None:
        os.chdir(cwd)  # a Slurm or Ray worker starts elsewhere; the stage's paths are relative to the repository
    if threads is not None:
        set_threads(threads)
    try:
        return fn(params, *args, key)
    except Exception as exc:
        job = f"job {key} ({fn.__name__} {' '.join(map(str, args))}) failed"
        if isinstance(exc, StageError) and not debugging():  # the message names the problem and the fix already
            raise JobFailed(f"{job}: {exc}") from None
        raise JobFailed(
            f"{job}: {type(exc).__name__}: {exc}\n--- the job's traceback ---\n{traceback.format_exc()}"
        ) from None


def debugging() -> bool:
    """GANAD_DEBUG=1: a job's error carries its traceback even when it is one ganad raises on purpose."""
    return os.environ.get("GANAD_DEBUG", "").strip() not in ("", "0")


def optional_module(name: str):
    """An optional engine, imported only when chosen; missing, the message names the extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ParamsError(
            f"executor.kind = '{EXTRAS.get(name, name)}' needs the '{name}' package, which is not "
            f"installed ({exc}); install it with `pip install -e '.[{EXTRAS.get(name, name)}]'` "
            "or choose executor.kind: local"
        ) from None


def start_method(device: str) -> str:
    """How local workers start. On a Linux CPU run they are forked: the stage's process has imported torch
    but run nothing on it (no threads, no CUDA), and a fork skips the 2-3 s of imports that a spawned
    worker repeats in every stage (about 4 minutes over the default run's stages). A GPU run, or
    another system, spawns them, since a CUDA context does not survive a fork."""
    from ganad.runtime.device import resolve_device

    if sys.platform.startswith("linux") and resolve_device(device).type == "cpu":
        return "fork"
    return "spawn"


# --- the engines: each returns [fn(params, *args, key) for key in keys], in key order ------------------


def _serial(executor, jobs_setting, device, fn, params, args, keys) -> list:
    threads = threads_per_job(executor.threads, 1)
    set_threads(threads)
    return [run_job(fn, params, args, key) for key in keys]


def _local(executor, jobs_setting, device, fn, params, args, keys) -> list:
    at_once = processes(jobs_setting, device, len(keys))
    if at_once <= 1:
        return _serial(executor, jobs_setting, device, fn, params, args, keys)
    context = multiprocessing.get_context(start_method(device))
    n_gpus = gpu_count(device) if jobs_setting == "auto" else 0
    gpus = None
    if n_gpus > 1:
        gpus = context.Queue()
        for index in range(at_once):
            gpus.put(index % n_gpus)
    threads = threads_per_job(executor.threads, at_once)
    with ProcessPoolExecutor(
        at_once, mp_context=context, initializer=_start_worker, initargs=(threads, gpus, os.getpid())
    ) as pool:
        futures = [pool.submit(run_job, fn, params, args, key) for key in keys]
        try:
            return [future.result() for future in futures]
        except BaseException:
            # jobs already running finish and keep their models and checkpoints for the rerun
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _slurm(executor, jobs_setting, device, fn, params, args, keys) -> list:
    submitit = optional_module("submitit")
    s = executor.slurm
    engine = submitit.AutoExecutor(folder=str(Path(s.folder) / "%j"), cluster=s.cluster)
    options: dict[str, Any] = dict(
        timeout_min=s.timeout_min,
        cpus_per_task=s.cpus_per_job,
        mem_gb=s.mem_gb,
        gpus_per_node=s.gpus_per_job,
        slurm_array_parallelism=s.array_parallelism,
        name=f"ganad-{fn.__name__}",
    )
    if s.partition:
        options["slurm_partition"] = s.partition
    if s.additional:
        options["slurm_additional_parameters"] = dict(s.additional)
    engine.update_parameters(**options)
    threads = s.cpus_per_job if executor.threads == "auto" else int(executor.threads)
    n, cwd = len(keys), os.getcwd()
    submitted = engine.map_array(run_job, [fn] * n, [params] * n, [args] * n, keys, [threads] * n, [cwd] * n)
    print(
        f"submitted {n} jobs to {s.cluster} as array {submitted[0].job_id.split('_')[0] if submitted else '-'}"
        f"; logs in {s.folder}",
        file=sys.stderr,
    )
    results = []
    for key, job in zip(keys, submitted):
        try:
            results.append(job.result())
        except Exception as exc:  # submitit's FailedJobError carries the job's own traceback as text
            for other in submitted:
                if not other.done():
                    other.cancel(check=False)
            where = f"on {s.cluster} (job {job.job_id}, logs in {s.folder})"
            own = _own_message(str(exc))
            if own is not None:  # a StageError's one line, without submitit's copy of the traceback
                raise JobFailed(f"{own} {where}") from None
            raise JobFailed(f"job {key} ({fn.__name__}) failed {where}: {exc}") from None
    return results


def _own_message(text: str) -> str | None:
    """The message of a `JobFailed` that `run_job` raised for a StageError, out of the traceback text that
    submitit reports; None when the job failed otherwise (its traceback is the message) or GANAD_DEBUG=1."""
    marker = f"{JobFailed.__module__}.{JobFailed.__qualname__}: "
    if debugging() or marker not in text:
        return None
    rest = text.rsplit(marker, 1)[1]
    if "--- the job's traceback ---" in rest:
        return None
    message = rest.split("\n---", 1)[0].strip()  # submitit's log paths follow a rule of dashes
    return None if "\n" in message else message


def _ray(executor, jobs_setting, device, fn, params, args, keys) -> list:
    ray = optional_module("ray")
    r = executor.ray
    if not ray.is_initialized():
        ray.init(address=None if r.address == "local" else r.address)
    threads = max(1, int(r.cpus_per_job)) if executor.threads == "auto" else int(executor.threads)
    remote = ray.remote(num_cpus=r.cpus_per_job, num_gpus=r.gpus_per_job, max_retries=0)(run_job)
    cwd = os.getcwd()
    refs = [remote.remote(fn, params, args, key, threads, cwd) for key in keys]
    results = []
    for key, ref in zip(keys, refs):
        try:
            results.append(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            for other in refs:
                ray.cancel(other)
            cause = exc.as_instanceof_cause()
            raise JobFailed(str(cause) if isinstance(cause, JobFailed) else f"job {key} failed on Ray: {exc}") from None
    return results


ENGINES = {"serial": _serial, "local": _local, "slurm": _slurm, "ray": _ray}


def map_jobs(
    executor, fn: Callable, params, args: tuple, keys: list, *, jobs: int | str = "auto", device: str = "auto"
) -> list:
    """[fn(params, *args, key) for key in keys] on the chosen executor, in key order. `jobs` is the local
    pool's size for this kind of job (executor.jobs or executor.score_jobs). The first job that fails
    raises `JobFailed` with its key and traceback; jobs that have started are let finish, so their
    models and checkpoints are there for the rerun, and jobs not started are cancelled."""
    if not keys:
        return []
    return ENGINES[executor.kind](executor, jobs, device, fn, params, args, keys)
