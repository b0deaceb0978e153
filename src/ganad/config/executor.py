"""The `executor` section of params: where a stage's jobs run (ganad.runtime.executors runs them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ganad.schema import Float, Int, NonEmptyText, PositiveInt, Section, Text

EXECUTORS = ("serial", "local", "slurm", "ray")
AutoOrCount = Literal["auto"] | PositiveInt


class SlurmParams(Section):
    """executor.slurm: one Slurm job array per stage, one array task per job, through submitit."""

    cluster: Literal["slurm", "local", "debug"] = "slurm"  # local / debug: submitit's executors on this machine
    folder: NonEmptyText = Field("data/slurm", description="a folder path")  # logs, pickles
    partition: Text | None = None
    timeout_min: Int = Field(240, gt=0)
    cpus_per_job: Int = Field(4, gt=0)
    gpus_per_job: Int = Field(0, ge=0)
    mem_gb: Int = Field(16, gt=0)
    array_parallelism: Int = Field(64, gt=0)  # array tasks running at once
    additional: dict[str, Any] | None = Field(
        None, description="null or a mapping of sbatch options, e.g. {account: my_lab, qos: normal}"
    )


class RayParams(Section):
    """executor.ray: tasks on a running Ray cluster."""

    address: NonEmptyText = Field(
        "auto", description="'auto' (the cluster this machine belongs to), 'local' (start one here) or ray://host:port"
    )
    cpus_per_job: Float = Field(1, gt=0)
    gpus_per_job: Float = Field(0, ge=0)


class ExecutorParams(Section):
    kind: Literal[EXECUTORS] = "local"
    jobs: AutoOrCount = "auto"  # local: training jobs at once (auto: cores, or GPUs)
    score_jobs: AutoOrCount = "auto"  # local: scoring jobs at once (auto: as for jobs)
    threads: AutoOrCount = "auto"  # torch threads per job (auto: cores / jobs at once)
    # the configure stage prices the run on this machine (ganad.engine.price) and stops it before any training
    # when its estimate exceeds this many hours; null: no estimate, no limit
    max_hours: Float | None = Field(None, gt=0)
    slurm: SlurmParams = Field(default_factory=SlurmParams)
    ray: RayParams = Field(default_factory=RayParams)
