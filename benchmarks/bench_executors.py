"""The pipeline's stages under `executor.kind: serial` against `local`, back to back on this machine.

Forces the stages that match `--glob` to rerun from scratch (data/checkpoints removed first), once
per executor: `dvc repro -f` for the default `*` (every stage, in DVC's order), `dvc repro -f --glob
-s PATTERN` otherwise. Prints each run's wall time, the speed-up of each executor over serial, and
that speed-up against this machine's limit (its core count: the most a process pool can give).
A kind may carry a thread count, `serial:1`: executor.threads for that run (default `auto`, which
gives a serial job every core through torch's own threads, and a pool's job its share). With
`serial:1` listed, each run is also set against one thread on one core, which separates what torch's
threads already get out of the cores from what the pool adds. params.yaml's executor section is set
for each run and put back at the end; the executor is no stage's parameter, so nothing else changes.
The last executor listed runs last, so the workspace ends as that executor leaves it (`local`, the
default's).

    .venv/bin/python benchmarks/bench_executors.py                                  # the whole default run
    .venv/bin/python benchmarks/bench_executors.py --glob 'train_score@mnist-one_class_normal-*'
    .venv/bin/python benchmarks/bench_executors.py --glob 'train_score@mnist-one_class_normal-a*' \
        --kinds serial:1,serial,local

Run it on an idle machine: a second heavy job halves both runs' speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

from ganad.runtime import executors

ROOT = Path(__file__).resolve().parents[1]


def repro(pattern: str) -> float:
    # without its checkpoints a forced stage trains from scratch (with them it would resume at the end)
    shutil.rmtree(ROOT / "data" / "checkpoints", ignore_errors=True)
    # the stages' `python` is this interpreter, venv activated or not
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    # every stage: the whole pipeline in DVC's order (`-s` would run the globbed stages in file order,
    # the report before the brain stages it reads)
    command = ["repro", "-f"] if pattern == "*" else ["repro", "-f", "--glob", "-s", pattern]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", *command], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


@click.command()
@click.option("--glob", "pattern", default="*", show_default=True, help="stages to force, as `dvc repro --glob`")
@click.option(
    "--kinds",
    default="serial,local",
    show_default=True,
    help="executors in the order they run, each KIND or KIND:THREADS (executor.threads; default auto)",
)
def main(pattern: str, kinds: str) -> None:
    """Time the forced stages under each executor (and thread count); print times and speed-ups."""
    params_path = ROOT / "params.yaml"
    original = params_path.read_text()
    cores = executors.cores()
    times = {}
    try:
        for kind in kinds.split(","):
            params = yaml.safe_load(original)
            params["executor"]["kind"], _, threads = kind.partition(":")
            params["executor"]["threads"] = int(threads) if threads else params["executor"]["threads"]
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            times[kind] = repro(pattern)
            print(f"{kind:>8}: {times[kind]:8.1f} s", flush=True)
    finally:
        params_path.write_text(original)
    base = times.get("serial")
    print(f"stages '{pattern}', {cores} cores (a pool's limit: {cores}.0x)")
    for kind, seconds in times.items():
        if base and not kind.startswith("serial"):
            print(
                f"{kind} against serial: {base / seconds:.2f}x ({base / seconds / cores:.0%} of the {cores}.0x limit)"
            )
    one_core = times.get("serial:1")
    for kind, seconds in times.items():
        if one_core and kind != "serial:1":  # what each way gets out of the cores, against one thread on one
            print(f"{kind} against serial:1 (one thread): {one_core / seconds:.2f}x")


if __name__ == "__main__":
    main()
