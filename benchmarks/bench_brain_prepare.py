"""Peak memory and time of preparing BraTS volumes (`ganad.studies.brain.slices.prepare`): memory stays flat in N.

Writes N cases of the real BraTS shape (240x240x155 int16 t2 and a segmentation,
uncompressed .nii, stored LPS as BraTS stores them) beside two small healthy HCP
subjects, and runs `prepare` on them in a fresh subprocess per N, so that each peak
resident memory (ru_maxrss) is that run's own. A last run adds two healthy subjects of
the real HCP shape (260x311x260 float32), the largest volumes the pipeline reads.
Printed per run: seconds, seconds per BraTS volume, peak memory, the peak above the
process's imports, and that excess as a multiple of one BraTS volume in float32 and as
a share of the machine's memory; then how long BraTS 2017's 285 volumes take (the time
per volume from the smallest and largest N), what reading .nii.gz instead of .nii adds,
and the peak extrapolated to 285 volumes from its growth between the two largest N (the
first volumes also warm up the allocator, so the smallest N peaks lower).

    .venv/bin/python benchmarks/bench_brain_prepare.py             # N = 4, 16 and 32, then the HCP run
    .venv/bin/python benchmarks/bench_brain_prepare.py --n 4 --n 64 --no-hcp
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import click
import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

BRATS_SHAPE = (240, 240, 155)
HCP_SHAPE = (260, 311, 260)
BRATS_AFFINE = np.array([[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
BRATS_2017 = 285  # volumes of the ADAE test set (210 HGG + 75 LGG)
MIB = 2**20


def head(shape, dtype, seed: int) -> np.ndarray:
    """A skull-stripped head: an ellipsoid of positive intensities (about 16 % of the voxels, like BraTS) in zeros."""
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[tuple(slice(-1, 1, n * 1j) for n in shape)]
    inside = (x / 0.6) ** 2 + (y / 0.75) ** 2 + (z / 0.85) ** 2 < 1
    volume = np.zeros(shape, dtype=dtype)
    volume[inside] = rng.uniform(100, 1000, int(inside.sum())).astype(dtype)
    return volume


def write_dataset(root: Path, n_brats: int, real_hcp: bool) -> None:
    """n_brats copies of one BraTS-shaped case (HGG/), and two healthy subjects in the HCP layout."""
    case = root / "brats" / "HGG" / "Brats17_BENCH_0_1"
    case.mkdir(parents=True)
    seg = np.zeros(BRATS_SHAPE, dtype=np.uint8)
    seg[100:140, 110:150, 60:90] = 2
    seg[110:130, 120:140, 65:85] = 4
    nib.save(nib.Nifti1Image(head(BRATS_SHAPE, np.int16, 0), BRATS_AFFINE), case / f"{case.name}_t2.nii")
    nib.save(nib.Nifti1Image(seg, BRATS_AFFINE), case / f"{case.name}_seg.nii")
    for i in range(1, n_brats):
        copy = case.with_name(f"Brats17_BENCH_{i}_1")
        copy.mkdir()
        for key in ("t2", "seg"):
            shutil.copyfile(case / f"{case.name}_{key}.nii", copy / f"{copy.name}_{key}.nii")
    shape = HCP_SHAPE if real_hcp else (64, 64, 48)
    for i, subject in enumerate(("100307", "100408")):
        folder = root / "hcp" / subject / "T1w"
        folder.mkdir(parents=True)
        nib.save(
            nib.Nifti1Image(head(shape, np.float32, 1 + i), np.diag([-0.7, 0.7, 0.7, 1])),
            folder / "T2w_acpc_dc_restore_brain.nii.gz",
        )


def child(root: Path) -> None:
    """Run prepare on root; print its seconds, the peak memory after the imports and at the end (MiB)."""
    from ganad.studies.brain import brain_params
    from ganad.studies.brain.slices import prepare

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    brain = brain_params({"hcp_root": str(root / "hcp"), "brats_root": str(root / "brats")})
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HCP subjects off the BraTS grid are not warned about; nothing else is
        counts = prepare(brain, 0, root / "out", root / "split.npz", root / "report")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "baseline_mib": baseline,
                "peak_mib": peak,
                "brats_slices": counts["slices"]["brats"],
                "hcp_slices": counts["slices"]["hcp"],
            }
        )
    )


def run_child(root: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def gz_overhead(root: Path) -> tuple[float, float]:
    """Seconds to read one BraTS-shaped volume from .nii and from .nii.gz (nibabel's default compression)."""
    from ganad.studies.brain.volumes import load_volume

    plain = next((root / "brats").rglob("*_t2.nii"))
    packed = root / "packed_t2.nii.gz"
    nib.save(nib.load(plain), packed)
    times = []
    for path in (plain, packed):
        start = time.perf_counter()
        load_volume(path)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


@click.command()
@click.option(
    "--n",
    "sizes",
    type=int,
    multiple=True,
    default=(4, 16, 32),
    show_default=True,
    help="BraTS volumes per run (at least two, ascending)",
)
@click.option("--hcp/--no-hcp", default=True, help="also a run with two subjects of the real HCP shape")
@click.option("--child", "child_root", type=click.Path(path_type=Path), hidden=True)
def main(sizes, hcp: bool, child_root: Path | None) -> None:
    """Print peak memory and time of `prepare` per N, and the extrapolation to 285 BraTS volumes."""
    if child_root:
        return child(child_root)
    machine_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MIB
    volume_mib = np.prod(BRATS_SHAPE) * 4 / MIB
    print(
        f"machine: {machine_mib:.0f} MiB memory, {os.cpu_count()} CPUs; one BraTS volume in float32: "
        f"{volume_mib:.1f} MiB; one HCP volume in float32: {np.prod(HCP_SHAPE) * 4 / MIB:.1f} MiB"
    )
    print(
        f"{'run':<30} {'s':>7} {'s/vol':>6} {'peak MiB':>9} {'imports':>8} {'excess':>7} "
        f"{'x vol':>6} {'% mem':>6} {'slices':>7}"
    )
    runs = [(n, False) for n in sizes] + ([(sizes[0], True)] if hcp else [])
    results = {}
    for n, real_hcp in runs:
        with tempfile.TemporaryDirectory(prefix="bench_brain_") as tmp:
            root = Path(tmp)
            write_dataset(root, n, real_hcp)
            got = run_child(root)
            if (n, real_hcp) == runs[0]:
                plain_s, packed_s = gz_overhead(root)
        results[n, real_hcp] = got
        excess = got["peak_mib"] - got["baseline_mib"]
        name = f"{n} BraTS + 2 {'real-shape' if real_hcp else 'small'} HCP"
        print(
            f"{name:<30} {got['seconds']:>7.1f} {got['seconds'] / n:>6.2f} {got['peak_mib']:>9.0f} "
            f"{got['baseline_mib']:>8.0f} {excess:>7.0f} {excess / volume_mib:>6.1f} "
            f"{100 * got['peak_mib'] / machine_mib:>6.1f} {got['brats_slices'] + got['hcp_slices']:>7}"
        )

    if len(sizes) >= 2:
        first, last, before_last = (results[n, False] for n in (sizes[0], sizes[-1], sizes[-2]))
        per_volume = (last["seconds"] - first["seconds"]) / (sizes[-1] - sizes[0])
        growth = (last["peak_mib"] - before_last["peak_mib"]) / (sizes[-1] - sizes[-2])
        slices_mib = last["brats_slices"] / sizes[-1] * 32 * 32 * 2 / MIB  # each volume's kept slices in float16
        print(
            f"per BraTS volume: {per_volume:.2f} s (.nii); reading it from .nii.gz instead: "
            f"{packed_s - plain_s:+.2f} s ({plain_s:.2f} s -> {packed_s:.2f} s)"
        )
        print(
            f"{BRATS_2017} volumes: about {BRATS_2017 * per_volume / 60:.1f} min from .nii, "
            f"{BRATS_2017 * (per_volume + packed_s - plain_s) / 60:.1f} min from .nii.gz"
        )
        print(
            f"peak growth per volume from N = {sizes[-2]} to {sizes[-1]}: {growth:.2f} MiB measured, "
            f"{slices_mib:.2f} MiB expected (its kept slices in float16); at {BRATS_2017} volumes the peak "
            f"would be about {last['peak_mib'] + max(growth, slices_mib) * (BRATS_2017 - sizes[-1]):.0f} MiB "
            f"({100 * (last['peak_mib'] + max(growth, slices_mib) * (BRATS_2017 - sizes[-1])) / machine_mib:.1f} "
            "% of this machine's memory)"
        )


if __name__ == "__main__":
    main()
