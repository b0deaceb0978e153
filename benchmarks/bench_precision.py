"""Training steps in fp32 against bf16 (`precision: bf16`, autocast), per network method, on this machine.

Each method is built with its params.yaml settings for 1-channel 32x32 images (`--set method.key=value`
overrides one, e.g. adae.width=64 for the paper's width) and takes `--steps` training steps on random
images in fp32, then in bf16, in interleaved rounds within one process so that both see the same machine
load. Prints images/s of each, the bf16/fp32 ratio, and beside it this machine's limit: the bf16/fp32
ratio of a large matrix product (what bf16 can gain where the step is all GEMM; small networks are
bound by everything else).

    python benchmarks/bench_precision.py --threads 1
    python benchmarks/bench_precision.py --methods adae,dcae --set adae.width=64 --set dcae.width=64

Speed only: whether a method's AUROCs hold in bf16 is the convergence study's question
(`benchmarks/convergence.py run ... --set adae.precision=bf16` into another --out).
"""

from __future__ import annotations

import statistics
import time

import click
import torch

from ganad.config.params import load_params, method_overrides
from ganad.methods import method_class
from ganad.runtime.device import seed_everything

from machine import gemm_gflops

NETWORK_METHODS = ("adae", "adgan", "dcae", "vae", "cevae", "anogan", "ganomaly", "egbad", "igmm_gan")


def images_per_second(method, x: torch.Tensor, steps: int) -> float:
    """Wall-clock images/s of `steps` training steps on batch `x` in the method's precision."""
    start = time.perf_counter()
    for step in range(steps):
        with method.precision():
            method.train_step(x, 0, step)
    return steps * len(x) / (time.perf_counter() - start)


@click.command()
@click.option("--methods", default=",".join(NETWORK_METHODS))
@click.option("--set", "overrides", multiple=True, help="method.key=value, e.g. adae.width=64")
@click.option("--steps", default=10, help="training steps per round")
@click.option("--rounds", default=3, help="interleaved fp32/bf16 rounds; the median is printed")
@click.option("--threads", default=1)
def main(methods, overrides, steps, rounds, threads) -> None:
    torch.set_num_threads(threads)
    params = load_params()
    settings = method_overrides(overrides)
    fp32_gemm, bf16_gemm = gemm_gflops(1024), gemm_gflops(1024, dtype=torch.bfloat16)
    print(f"{threads} thread(s); GEMM 1024^3: fp32 {fp32_gemm:.0f} GFLOP/s, bf16 {bf16_gemm:.0f} GFLOP/s")
    print(f"the machine's limit, bf16/fp32 on a pure GEMM: {bf16_gemm / fp32_gemm:.2f}x\n")
    print(f"{'method':10} {'width':>5} {'batch':>5} {'fp32 img/s':>11} {'bf16 img/s':>11} {'bf16/fp32':>9}")
    for name in methods.split(","):
        base = params.method_config(name, 1).model_copy(update={"threads": threads, **settings.get(name, {})})
        built = {}
        for precision in ("fp32", "bf16"):
            seed_everything(0)
            built[precision] = method_class(name)(
                base.model_copy(update={"precision": precision}), 1, torch.device("cpu")
            )
            built[precision]._mode(True)
        x = torch.rand(base.batch_size, 1, 32, 32) * 2 - 1
        for method in built.values():  # warm-up: allocations, kernel choice
            images_per_second(method, method._input(x), 2)
        rates = {"fp32": [], "bf16": []}
        for _ in range(rounds):
            for precision, method in built.items():
                rates[precision].append(images_per_second(method, method._input(x), steps))
        fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
        print(f"{name:10} {base.width:>5} {base.batch_size:>5} {fp32:>11.0f} {bf16:>11.0f} {bf16 / fp32:>8.2f}x")


if __name__ == "__main__":
    main()
