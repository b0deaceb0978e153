"""The grid of a ranked collection: its most anomalous images above its least anomalous (ADGAN Figs. 4-6).

Apart from `ganad.ranking` so that the training stage, which imports that module,
does not depend on the figure code: editing a figure reruns scoring, never training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .figures import _image, _save


def ranked_grid(most: Sequence[tuple], least: Sequence[tuple], path, title: str = "") -> Path:
    """Two rows of `(image (C, 32, 32) in [-1, 1], caption)`: most anomalous first, then least anomalous.
    Captions (rank, label, score) go above each image."""
    rows = [("most anomalous", list(most)), ("least anomalous", list(least))]
    for row_title, cells in rows:
        if not cells:
            raise ValueError(f"ranked_grid: the '{row_title}' row holds no images")
    n_cols = max(len(cells) for _, cells in rows)
    fig = Figure(figsize=(1.25 * n_cols + 1.0, 3.4), dpi=100, layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, n_cols, squeeze=False))
    for r, (row_title, cells) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.set_axis_off()
                continue
            image, caption = cells[c]
            shown = _image(image, f"ranked_grid: '{row_title}' image {c}")
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(caption, fontsize=7)
        axes[r, 0].set_ylabel(row_title, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
