"""The offline ranking demo's image folders, drawn from the embedded MNIST subset (the rank_demo stage).

normal/ holds training images of one digit (a flat folder), mixed/<digit>/ a classed collection of test
images of every digit, and flat/ other test images of every digit, shuffled and unlabelled. The rank_*
stages train on normal/ and rank mixed/ and flat/ (the `rank` section of params), so the ranking study
runs on every `dvc repro` with no download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ganad.data.sources import load_embedded
from ganad.files import replace_folder

NORMAL_DIGIT = 1  # the demo's normal class: a GAN learns it in few steps, so the demo's ranking is legible
NORMAL_IMAGES = 300  # of its training images
MIXED_PER_DIGIT = 20  # test images of every digit in mixed/<digit>/
FLAT_PER_DIGIT = 4  # further test images of every digit in flat/, unlabelled and shuffled
SEED = 0


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def write_demo(out: Path) -> dict[str, int]:
    """Write the demo's folders to `out`, all or nothing: the previous demo stays until the new one is complete.
    Returns the image count of each folder."""
    raw = load_embedded("mnist")
    with replace_folder(out) as tmp:
        return _write(raw, tmp)


def _write(raw, tmp: Path) -> dict[str, int]:
    normal = np.flatnonzero(raw.y_train == NORMAL_DIGIT)[:NORMAL_IMAGES]
    for i, row in enumerate(normal):
        write_png(tmp / "normal" / f"{i:04d}.png", raw.x_train[row])

    rng = np.random.default_rng(SEED)
    flat = []
    for digit in range(10):
        rows = np.flatnonzero(raw.y_test == digit)
        for i, row in enumerate(rows[:MIXED_PER_DIGIT]):
            write_png(tmp / "mixed" / str(digit) / f"{i:03d}.png", raw.x_test[row])
        flat += rows[MIXED_PER_DIGIT : MIXED_PER_DIGIT + FLAT_PER_DIGIT].tolist()
    for i, row in enumerate(rng.permutation(flat)):  # names say nothing of the digit
        write_png(tmp / "flat" / f"{i:03d}.png", raw.x_test[row])

    return {"normal": len(normal), "mixed": 10 * MIXED_PER_DIGIT, "flat": len(flat)}
