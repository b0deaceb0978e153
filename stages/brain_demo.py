"""brain_demo: the offline brain-MRI demo in the HCP and BraTS 2017 layouts (a pipeline demo, not a benchmark)."""

import time

import click

from ganad.config.params import load_params
from ganad.demos.brain import STATEMENT, build
from ganad.files import replace_folder
from ganad.runtime import layout
from ganad.runtime.executors import cores
from ganad.runtime.stage import run

OUT = layout.brain_demo()  # brain.hcp_root and brain.brats_root point inside it by default
MAX_WORKERS = 4  # volumes written at once, one process each (about 0.5 GB each); the files do not depend on it


@click.command()
def main() -> None:
    """Write data/demo/brain/: hcp/<subject>/T1w/ (healthy pseudo-subjects, 0.7 mm, 260x311x260),
    brats/HGG|LGG/<case>/ (tumour cases, 1 mm, 240x240x155, seg labels 1, 2, 4) and demo_manifest.json,
    from the MNI152 template that ships in nilearn (and Colin27 where Debian's mricron-data is installed),
    warped at random, with synthetic lesions; counts and seed from the `brain` section of params
    (demo_healthy, demo_hgg, demo_lgg, demo_seed). It keeps the brain pipeline running offline on every
    `dvc repro`; it is a demo of the pipeline, not a tumour benchmark.
    """
    brain = load_params().brain
    started = time.perf_counter()
    with replace_folder(OUT) as tmp:  # all or nothing: the previous demo stays until the new one is complete
        manifest = build(tmp, brain, workers=min(cores(), MAX_WORKERS))
    sources = ", ".join(
        f"{s['name']} ({s['package']} {s.get('version', '')})".replace(" )", ")") for s in manifest["sources"]
    )
    click.echo(
        f"wrote {OUT} in {time.perf_counter() - started:.0f} s from {sources}, seed {brain.demo_seed}: "
        f"healthy {brain.demo_healthy} (HCP layout), HGG {brain.demo_hgg} and LGG {brain.demo_lgg} "
        "(BraTS 2017 layout)"
    )
    click.echo(f"NOTE: {STATEMENT}")


if __name__ == "__main__":
    run(main)
