"""The pipeline's stages under `executor.kind: serial` against `local`, back to back on this machine.

Forces the stages that match `--glob` (default: every stage of the default run) to rerun with
`dvc repro -f --glob -s` from scratch (data/checkpoints removed first), once per executor, and
prints each run's wall time, the speed-up of each executor over serial, and that speed-up against
this machine's limit (its core count: the most a process pool can give). params.yaml's executor section is set for each run and put back
at the end; the executor is no stage's parameter, so nothing else changes. The last executor
listed runs last, so the workspace ends as that executor leaves it (`local`, the default's).

    .venv/bin/python benchmarks/bench_executors.py                                  # the whole default run
    .venv/bin/python benchmarks/bench_executors.py --glob 'train@mnist-one_class_normal-*'

Run it on an idle machine: a second heavy job halves both runs' speed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import yaml

from ganad import executors

ROOT = Path(__file__).resolve().parents[1]


def repro(pattern: str) -> float:
    # without its checkpoints a forced stage trains from scratch (with them it would resume at the end)
    shutil.rmtree(ROOT / "data" / "checkpoints", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "--glob", "-s", pattern], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


@click.command()
@click.option("--glob", "pattern", default="*", show_default=True, help="stages to force, as `dvc repro --glob`")
@click.option("--kinds", default="serial,local", show_default=True, help="executors, in the order they run")
def main(pattern: str, kinds: str) -> None:
    """Time `dvc repro -f --glob -s PATTERN` under each executor; print times and speed-ups."""
    params_path = ROOT / "params.yaml"
    original = params_path.read_text()
    cores = executors.cores()
    times = {}
    try:
        for kind in kinds.split(","):
            params = yaml.safe_load(original)
            params["executor"]["kind"] = kind
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            times[kind] = repro(pattern)
            print(f"{kind:>8}: {times[kind]:8.1f} s", flush=True)
    finally:
        params_path.write_text(original)
    base = times.get("serial")
    print(f"stages '{pattern}', {cores} cores (a pool's limit: {cores}.0x)")
    for kind, seconds in times.items():
        if base and kind != "serial":
            print(f"{kind} against serial: {base / seconds:.2f}x ({base / seconds / cores:.0%} of the {cores}.0x limit)")


if __name__ == "__main__":
    main()
