"""rank_demo: the offline ranking demo's image folders, drawn from the embedded MNIST subset."""

import shutil

import click
import numpy as np
from PIL import Image

from ganad import layout
from ganad.loaders import load_embedded
from ganad.cli import run

NORMAL_DIGIT = 1  # the demo's normal class: a GAN learns it in few steps, so the demo's ranking is legible
NORMAL_IMAGES = 300  # of its training images
MIXED_PER_DIGIT = 20  # test images of every digit in mixed/<digit>/
FLAT_PER_DIGIT = 4  # further test images of every digit in flat/, unlabelled and shuffled
SEED = 0


def write_png(path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@click.command()
def main() -> None:
    """Write data/demo/rank/: normal/ (training images of one digit, a flat folder), mixed/<digit>/
    (a classed collection: test images of every digit) and flat/ (other test images of every digit,
    shuffled, with no labels). The rank_* stages train on normal/ and rank mixed/ and flat/
    (the `rank` section of params); the demo keeps the feature running on every `dvc repro`.
    """
    raw = load_embedded("mnist")
    out = layout.ranking_demo()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    normal = np.flatnonzero(raw.y_train == NORMAL_DIGIT)[:NORMAL_IMAGES]
    for i, row in enumerate(normal):
        write_png(tmp / "normal" / f"{i:04d}.png", raw.x_train[row])

    rng = np.random.default_rng(SEED)
    flat = []
    for digit in range(10):
        rows = np.flatnonzero(raw.y_test == digit)
        for i, row in enumerate(rows[:MIXED_PER_DIGIT]):
            write_png(tmp / "mixed" / str(digit) / f"{i:03d}.png", raw.x_test[row])
        flat += rows[MIXED_PER_DIGIT:MIXED_PER_DIGIT + FLAT_PER_DIGIT].tolist()
    for i, row in enumerate(rng.permutation(flat)):  # names say nothing of the digit
        write_png(tmp / "flat" / f"{i:03d}.png", raw.x_test[row])

    # all or nothing: the previous demo stays until the new one is complete
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    click.echo(f"wrote {out}: normal/ {len(normal)} images of digit {NORMAL_DIGIT}, "
               f"mixed/ {10 * MIXED_PER_DIGIT} in 10 digit folders, flat/ {len(flat)} unlabelled")


if __name__ == "__main__":
    run(main)
