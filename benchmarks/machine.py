"""What this machine can do, for the benchmarks' floors: its GEMM rate and the process's peak memory."""

from __future__ import annotations

import resource
import time

import torch


def gemm_gflops(n: int = 1024, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """The best of three timings of an n x n matrix product in `dtype` (float32 by default), in GFLOP/s."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * n**3 / best / 1e9


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def maxrss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
