"""Time ADGAN's batched latent search against the plain per-pair loop, in one run.

At the paper's settings (n_seed 64, k 5, latent 256, DCGAN width 64, 32x32 images,
1 and 3 channels) both search the same random images from the same initial latents
with an untrained generator (timing does not depend on training). Printed per
channel count: seconds per image for each, their ratio, peak memory, and the largest
relative difference between their scores; then the floors this machine allows,
measured here: the search's state traffic at this machine's memory bandwidth, the Adam
arithmetic with everything in cache, and the matrix products at this machine's GEMM
rate; and the BLAS rate at the search's own product shapes.

    .venv/bin/python benchmarks/bench_adgan_search.py            # 2 images, 1 thread
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_adgan_search.py --threads 2 --images 4 --plain-images 2
    ... --no-fused   # the torch-only implementation (what a GPU runs) on the CPU, for comparison

On a CPU shared with other busy processes, run with OMP_WAIT_POLICY=PASSIVE when using more than
one thread: OpenMP's default spinning made both searches several times slower there.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import click
import torch

from ganad.methods.adgan import kernels
from ganad.methods.adgan.reference import reference_search
from ganad.methods.adgan.search import BatchedSearch, SearchSettings, auto_pairs_per_batch, initial_latents
from ganad.methods.common import nets

from machine import gemm_gflops, maxrss_mib  # benchmarks/machine.py

LATENT, WIDTH, N_SEED, K = 256, 64, 64, 5


def plain_loop(gen, x, z0, k=K):
    """ADGAN's reference search (`ganad.methods.adgan.reference`): one image and one seed at a time."""
    return reference_search(gen, x, z0, k)[0]


def adam_ns_per_element(state_mib: int, threads: int) -> float:
    """The search's Adam kernel (read p, g, m, v; write p, m, v) over a working set of `state_mib` per
    thread, `threads` threads side by side as the search's workers run, in ns per element overall."""
    n = state_mib * (1 << 20) // 16
    tensors = [[torch.rand(1, n) for _ in range(4)] for _ in range(threads)]
    start_values = torch.rand(n)
    repeats = max(1, (256 << 20) // (16 * n))

    def run(p, g, m, v):
        for _ in range(repeats):
            kernels.adam_(p, g, m, v, start_values, 1e-5, (0.5, 0.999), 1e-8, 2, last=False)

    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(3):
            start = time.perf_counter()
            list(pool.map(lambda t: run(*t), tensors))
            best = min(best, (time.perf_counter() - start) / repeats)
    return best / (n * threads) * 1e9


def copy_gb_per_s(threads: int, mib: int = 512) -> float:
    """Memory bandwidth as the search sees it: bytes read + written per second by `threads` threads
    each copying its own `mib` MiB, far beyond the caches."""
    n = mib * (1 << 20) // 4
    pairs = [(torch.empty(n), torch.rand(n)) for _ in range(threads)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    best = float("inf")
    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(3):
                start = time.perf_counter()
                list(pool.map(lambda ab: ab[0].copy_(ab[1]), pairs))
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * n * 4 * threads / best / 1e9


def state_traffic_bytes(first_layer: int, rest: int) -> float:
    """Bytes of per-pair state one image's fused search moves between memory and the cores, in float32.

    First-layer weights (no stored moments): written at step 1 (from the shared trained values),
    read and written at each middle step, read at the last. Every other weight: p, m, v written
    at step 1, read and written in the middle, read with p written at the last, and the weights
    read once more by each forward product after step 1 (k of them, the final evaluation included).
    """
    first = 4 + 8 * (K - 2) + 4
    other = 12 + 24 * (K - 2) + 16 + 4 * K
    return N_SEED * (first * first_layer + other * rest)


def per_pair_gemm_gflops(rows: int, cin: int, cols: int, pairs: int = 8, pool: int = 64) -> float:
    """GFLOP/s of the search's per-pair forward product (pairs x (rows, cin) @ (cin, cols)), each pair's
    weights taken in turn from a pool too large for the cache, as the search meets them."""
    w = torch.randn(pool, cin, cols)
    x, out = torch.randn(pairs, rows, cin), torch.empty(pairs, rows, cols)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(0, pool, pairs):
            torch.bmm(x, w[i : i + pairs], out=out)
        best = min(best, (time.perf_counter() - start) / (pool // pairs))
    return 2 * pairs * rows * cin * cols / best / 1e9


def search_flops(channels: int) -> float:
    """Multiply-adds x 2 of one image's search: per pair k x (forward + input grad + weight grad) + 1 forward."""
    w = WIDTH
    macs = LATENT * 4 * w * 16 + 16 * (4 * w) * (2 * w) * 16 + 64 * (2 * w) * w * 16 + 256 * w * channels * 16
    return 2 * N_SEED * (3 * K + 1) * macs


@click.command()
@click.option("--images", default=2, show_default=True, help="random images per channel count")
@click.option("--plain-images", default=None, type=int, help="images for the plain loop (default: --images; 0: skip)")
@click.option("--channels", "channel_counts", multiple=True, type=int, default=(1, 3), show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch threads (both searches)")
@click.option("--pairs-per-batch", default=None, type=int, help="default: auto_pairs_per_batch")
@click.option(
    "--workers",
    default=None,
    type=int,
    help="batches searched at once, one thread each (default: --threads, as ADGAN's auto does)",
)
@click.option("--repeats", default=3, show_default=True, help="timed runs of the batched search (median shown)")
@click.option("--fused/--no-fused", default=True, show_default=True, help="the CPU kernels, or torch operations only")
@click.option("--seed", default=0, show_default=True)
def main(images, plain_images, channel_counts, threads, pairs_per_batch, workers, repeats, fused, seed):
    torch.set_num_threads(threads)
    plain_images = images if plain_images is None else plain_images
    print(
        f"torch {torch.__version__}, {threads} thread(s); n_seed {N_SEED}, k {K}, latent {LATENT}, width {WIDTH}, 32x32"
    )
    for channels in channel_counts:
        torch.manual_seed(seed)
        gen = nets.decoder(channels, LATENT, WIDTH)
        nets.dcgan_init(gen)
        gen.eval()
        x = torch.rand(images, channels, 32, 32) * 2 - 1
        z0 = initial_latents(images, N_SEED, LATENT, torch.Generator().manual_seed(seed + 1))
        pairs = pairs_per_batch or auto_pairs_per_batch(gen, torch.device("cpu"))
        workers = workers or threads
        search = BatchedSearch(
            gen, SearchSettings(n_seed=N_SEED, k=K, pairs_per_batch=pairs, workers=workers), fused=fused
        )
        rss0 = maxrss_mib()
        search.run(x[:1], z0=z0[:1])  # warm-up: allocate buffers, compile the kernels
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            batched = search.run(x, z0=z0)
            times.append((time.perf_counter() - start) / images)
        t_batched = statistics.median(times)
        rss_batched = maxrss_mib()
        n_params = sum(p.numel() for p in gen.parameters())
        print(
            f"\nchannels {channels}: {n_params / 1e6:.2f} M generator parameters, {pairs} pairs per batch, "
            f"{workers} worker(s), {'numba kernels' if fused else 'torch operations only'}"
        )
        print(
            f"  batched search  {t_batched:7.3f} s/image  ({images} images; median of {repeats} runs, "
            f"{min(times):.3f} to {max(times):.3f})"
        )
        if plain_images > 0:
            start = time.perf_counter()
            plain = plain_loop(gen, x[:plain_images], z0[:plain_images])
            t_plain = (time.perf_counter() - start) / plain_images
            rel_pair = ((batched.loss[:plain_images] - plain).abs() / plain.abs()).max().item()
            rel_score = ((batched.scores()[:plain_images] - plain.mean(1)).abs() / plain.mean(1).abs()).max().item()
            print(f"  plain loop      {t_plain:7.3f} s/image  ({plain_images} images)")
            print(f"  speed-up        {t_plain / t_batched:7.2f} x")
        print(
            f"  peak RSS        {rss_batched:7.0f} MiB after the batched search (+{rss_batched - rss0:.0f} MiB in it; "
            f"per-pair state {search.per_pair_bytes() / 2**20:.1f} MiB, against "
            f"{4 * n_params * 4 / 2**20:.1f} MiB for weights, gradient and 2 moments stored whole)"
            + (f", {maxrss_mib():.0f} MiB after the plain loop" if plain_images > 0 else "")
        )
        if plain_images > 0:
            print(f"  max relative difference: per-pair losses {rel_pair:.2e}, scores {rel_score:.2e}")
        elements = N_SEED * K * n_params
        print(
            f"  work per image: {search_flops(channels) / 1e9:.1f} GFLOP, {elements / 1e6:.0f} M Adam element updates"
        )

    workers = workers or threads
    print(f"\nfloors on this machine, per image at these settings ({workers} worker(s); 3 channels has ~the same):")
    first_layer = nets.decoder(1, LATENT, WIDTH)[0].weight.numel()
    n_params = sum(p.numel() for p in nets.decoder(1, LATENT, WIDTH).parameters())
    elements = N_SEED * K * n_params
    traffic, bandwidth = state_traffic_bytes(first_layer, n_params - first_layer), copy_gb_per_s(workers)
    cached, rate = adam_ns_per_element(4, workers), gemm_gflops()
    memory_floor, adam_floor = traffic / bandwidth / 1e9, elements * cached / 1e9
    gemm_floor = search_flops(1) / rate / 1e9
    print(
        f"  state traffic {traffic / 1e9:.1f} GB at {bandwidth:.0f} GB/s (copy, {workers} thread(s)):  "
        f"{memory_floor:.3f} s"
    )
    print(f"  Adam arithmetic in cache, {cached:.2f} ns/element:             {adam_floor:.3f} s")
    print(f"  matrix products at {rate:.0f} GFLOP/s (1024^2 GEMM):          {gemm_floor:.3f} s")
    print(
        f"  (memory traffic overlaps the arithmetic; Adam and the products run one after the other: "
        f"floor about {max(memory_floor, adam_floor + gemm_floor):.3f} s)"
    )
    # each worker thread runs its products on one thread
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    rate1 = gemm_gflops()
    print(
        f"per-pair products at the search's shapes, one thread (8 pairs, weights from memory; "
        f"1024^2 GEMM on one thread: {rate1:.0f} GFLOP/s):"
    )
    for rows, cin, cols, what in (
        (16, 4 * WIDTH, 2 * WIDTH * 16, "4x4 -> 8x8 layer"),
        (64, 2 * WIDTH, WIDTH * 16, "8x8 -> 16x16 layer"),
    ):
        gflops = per_pair_gemm_gflops(rows, cin, cols)
        print(f"  {what}: ({rows} x {cin}) @ ({cin} x {cols}) at {gflops:.0f} GFLOP/s ({gflops / rate1:.0%})")
    torch.set_num_threads(threads_before)


if __name__ == "__main__":
    main()
