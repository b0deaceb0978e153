"""brain_prepare: healthy HCP and BraTS tumour volumes to labelled 32x32 axial slices, split by subject."""

import click

from ganad.config.params import load_params
from ganad.runtime import layout
from ganad.runtime.stage import run
from ganad.studies.brain import DATASET, PROTOCOL
from ganad.studies.brain.slices import prepare


@click.command()
def main() -> None:
    """Write data/prepared/brain/ (images.npy float16 (N, 1, 32, 32) in [-1, 1], HCP slices first, then
    BraTS; labels.npy 0 normal / 1 tumour; slices.csv, one row per slice; meta.json with every
    preprocessing choice and count), data/splits/brain/healthy_to_tumour.npz (train and val: healthy
    slices, split by subject; test: every BraTS slice) and reports/brain/ (prepare.json, and
    orientation.png: one HCP and one BraTS slice side by side, to check both face the same way).

    The volumes come from the `brain` section of params (`hcp_root`, `brats_root`, by default the
    offline demo's folders); they are read one at a time, and every file is checked before the first.
    """
    params = load_params()
    brain = params.brain
    counts = prepare(
        brain, params.seed, layout.prepared(DATASET), layout.splits(DATASET, PROTOCOL), layout.brain_reports()
    )
    grades = ", ".join(f"{grade} {n}" for grade, n in counts["brats_cases"].items() if n)
    click.echo(
        f"{DATASET}: {counts['hcp_subjects']} HCP subjects ({brain.modality}), "
        f"{sum(counts['brats_cases'].values())} BraTS cases ({grades})"
    )
    click.echo(
        f"{DATASET}: {counts['slices']['hcp']} healthy slices, {counts['slices']['brats']} BraTS slices "
        f"of which {counts['tumour_slices']} tumour (label rule '{brain.label_rule}')"
    )
    for source, dropped in counts["dropped"].items():
        click.echo(f"{DATASET}: {source} slices dropped: " + ", ".join(f"{n} by {name}" for name, n in dropped.items()))
    sizes = ", ".join(f"{part} {n}" for part, n in counts["split"].items())
    click.echo(f"{DATASET} {PROTOCOL}: {sizes} (train/val split by subject)")


if __name__ == "__main__":
    run(main)
