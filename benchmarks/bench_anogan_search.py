"""Time AnoGAN's batched latent search against the one-image-at-a-time loop, in one run.

At the paper's settings (DCGAN width 64, latent 100, 500 Adam steps, 32x32 images, 1 and
3 channels) both search the same random images from the same initial latents with an
untrained DCGAN in eval mode (timing does not depend on training). Printed per channel
count: seconds per image for each, their ratio, peak memory, the largest relative
difference between their scores, the search's FLOPs per image (counted by
torch.utils.flop_counter on one step) and the floor they set at this machine's
GEMM rate.

    .venv/bin/python benchmarks/bench_anogan_search.py                    # 2 threads, 256 images
    .venv/bin/python benchmarks/bench_anogan_search.py --device cuda --images 8192
"""

from __future__ import annotations

import time

import click
import torch
from torch.utils.flop_counter import FlopCounterMode

from ganad.methods.anogan.search import SearchSettings, anogan_loss, initial_latents, search, search_loop, search_nets
from ganad.methods.common import nets

from machine import gemm_gflops, maxrss_mib, sync  # benchmarks/machine.py

LATENT, WIDTH, STEPS = 100, 64, 500


def step_flops(G, features, x, settings) -> float:
    """FLOPs of one search step for one image: the loss's forward pass and its backward pass to z."""
    z = torch.zeros(1, LATENT, 1, 1, device=x.device, requires_grad=True)
    with torch.no_grad():
        fx = features(x[:1])
    with FlopCounterMode(display=False) as counter:
        anogan_loss(G, features, x[:1], fx, z, settings).sum().backward()
    return float(counter.get_total_flops())


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


@click.command()
@click.option("--images", default=256, show_default=True, help="random images for the batched search")
@click.option("--loop-images", default=2, show_default=True, help="images for the one-at-a-time loop")
@click.option(
    "--loop-steps",
    default=100,
    show_default=True,
    help="steps the loop runs (its time per image is scaled to --steps: every step costs the same)",
)
@click.option("--steps", default=STEPS, show_default=True)
@click.option("--channels", "channel_counts", multiple=True, type=int, default=(1, 3), show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(images, loop_images, loop_steps, steps, channel_counts, threads, device, seed):
    torch.set_num_threads(threads)
    device = torch.device(device)
    settings = SearchSettings(steps=steps)
    short = SearchSettings(steps=loop_steps)
    rate = gemm_gflops(2048 if device.type == "cuda" else 1024, device)
    print(
        f"torch {torch.__version__}, {device}, {threads} thread(s); latent {LATENT}, width {WIDTH}, {steps} steps, "
        f"32x32; float32 GEMM {rate:.0f} GFLOP/s"
    )
    for channels in channel_counts:
        torch.manual_seed(seed)
        G, D = nets.decoder(channels, LATENT, WIDTH).to(device), nets.encoder(channels, 1, WIDTH).to(device)
        nets.dcgan_init(G)
        nets.dcgan_init(D)
        G.eval(), D.eval()
        x = torch.rand(images, channels, 32, 32, device=device) * 2 - 1
        z0 = initial_latents(images, LATENT, seed).to(device)
        g, f = search_nets(G, D)  # frozen, BatchNorm folded, channels-last
        xl = x.contiguous(memory_format=torch.channels_last)
        flops = step_flops(g, f, x, settings) * steps
        search(g, f, xl[:8], z0[:8], SearchSettings(steps=2))  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rss0 = maxrss_mib()
        (batched, _), t = timed(lambda: search(g, f, xl, z0, settings), device)
        t_batched = t / images
        memory = (
            f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU peak"
            if device.type == "cuda"
            else f"peak RSS {maxrss_mib():.0f} MiB (+{maxrss_mib() - rss0:.0f} MiB in the search)"
        )
        # one image at a time: with the same frozen networks, and with the networks as trained (BatchNorm
        # layers, weight gradients computed and unused), the way a plain loop would run them
        n, zl = loop_images, z0[:loop_images]
        (loop, _), t = timed(lambda: search_loop(g, f, x[:n], zl, short), device)
        t_loop = t / n * steps / loop_steps
        _, t = timed(lambda: search_loop(G, D[:-1], x[:n], zl, short), device)
        t_naive = t / n * steps / loop_steps
        same, _ = search(g, f, xl[:n], zl, short)
        rel = ((loop - same).abs() / loop.abs()).max().item()
        floor = flops / rate / 1e9
        print(
            f"\nchannels {channels}: {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M generator and "
            f"{sum(p.numel() for p in f.parameters()) / 1e6:.2f} M feature parameters"
        )
        print(f"  batched search   {t_batched:8.4f} s/image  ({images} images at once)")
        print(
            f"  one at a time    {t_loop:8.4f} s/image  ({loop_images} images, {loop_steps} steps, scaled to {steps}; "
            f"the same frozen networks)"
        )
        print(f"  plain loop       {t_naive:8.4f} s/image  (networks as trained: BatchNorm, weight gradients)")
        print(
            f"  speed-up         {t_loop / t_batched:8.1f} x the one-at-a-time loop, {t_naive / t_batched:.1f} x "
            f"the plain loop"
        )
        print(
            f"  work per image   {flops / 1e9:8.1f} GFLOP  -> floor {floor:.4f} s/image at {rate:.0f} GFLOP/s; "
            f"the batched search is {t_batched / floor:.2f} x the floor ({flops / t_batched / 1e9:.0f} GFLOP/s)"
        )
        print(f"  memory           {memory}")
        print(f"  loop vs batched  max relative score difference {rel:.1e} (float32, {loop_steps} steps)")
        del batched


if __name__ == "__main__":
    main()
