"""Paper figures from plain arrays: each function checks its inputs and writes one PNG.

- `reconstruction_grid`: ADAE Fig. 2 (and Fig. 4a): x, G(x), D(G(x)) side by side,
  one row per image (e.g. a normal and an anomalous test image of each class).
- `score_histogram`: ADAE Fig. 4b: anomaly scores of normal vs anomalous images.
- `roc_curves`: ROC curves of several classes (or methods) in one plot (ADGAN Fig. 3).

Images are float arrays in [-1, 1] shaped (C, 32, 32) with 1 (grey) or 3 (RGB)
channels; torch tensors are accepted too. No pyplot and no global backend: every
figure is a `matplotlib.figure.Figure` rendered with Agg, so this is safe in
stages, tests and threads. These functions know nothing of the pipeline;
`write_figures`, at the end, draws them for one dataset and protocol from the
run's score tables, prepared images and the main model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from ganad.data.images import ImageSet
from ganad.data.protocols import BRAIN_DATASET
from ganad.engine.jobs import load_model
from ganad.evaluation.metrics import mean_roc
from ganad.files import atomic_write
from ganad.methods import method_class
from ganad.runtime import layout
from ganad.runtime.score_files import read_scores

IMAGE_SIZE = 32
NORMAL_COLOUR, ANOMALY_COLOUR = "#4c72b0", "#dd8452"


def _array(value, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected a numeric array, got {type(value).__name__}") from exc


def _image(value, what: str) -> np.ndarray:
    """(C, 32, 32) in [-1, 1] -> (32, 32) or (32, 32, 3) in [0, 1] for imshow."""
    x = _array(value, what)
    if x.ndim != 3 or x.shape[0] not in (1, 3) or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"{what}: expected an image of shape (C, {IMAGE_SIZE}, {IMAGE_SIZE}) with C = 1 or 3, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: the image holds NaN or infinite values")
    x = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_write(path) as handle:  # never a half-drawn PNG where a figure was
        fig.savefig(handle, format="png", dpi=fig.dpi)
    return path


def reconstruction_grid(rows: Sequence[tuple], path, columns: Sequence[str] = ("x", "G(x)", "D(G(x))")) -> Path:
    """One row per `(title, x, g_x, d_g_x)`: the input and its two reconstructions (ADAE Fig. 2)."""
    rows = list(rows)
    if not rows:
        raise ValueError("reconstruction_grid: no rows given; pass a list of (title, x, G(x), D(G(x)))")
    images = []
    for i, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) != 1 + len(columns):
            raise ValueError(
                f"reconstruction_grid: row {i} must be (title, {', '.join(columns)}), "
                f"got {type(row).__name__} of length {len(row) if hasattr(row, '__len__') else '?'}"
            )
        title, *pics = row
        shown = [_image(p, f"reconstruction_grid: row {i} ({title!s}), {name}") for p, name in zip(pics, columns)]
        if len({s.shape for s in shown}) != 1:
            raise ValueError(
                f"reconstruction_grid: row {i} ({title!s}) mixes image shapes "
                f"{[np.shape(p) for p in pics]}; x, G(x) and D(G(x)) must have one shape"
            )
        images.append((str(title), shown))

    n = len(images)
    fig = Figure(figsize=(1.5 * len(columns) + 1.6, 1.5 * n + 0.4), dpi=100, layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, len(columns), squeeze=False))
    for r, (title, shown) in enumerate(images):
        for c, img in enumerate(shown):
            ax = axes[r, c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(title, fontsize=9, rotation=0, ha="right", va="center")
    return _save(fig, path)


def score_histogram(scores, anomalous, path, title: str = "", bins: int = 50) -> Path:
    """Distributions of the scores of normal and anomalous images, each normalised to its own area (Fig. 4b)."""
    s = _array(scores, "score_histogram: scores")
    a = _array(anomalous, "score_histogram: anomalous")
    if s.ndim != 1 or a.ndim != 1 or len(s) != len(a):
        raise ValueError(
            f"score_histogram: scores and anomalous must be 1-D of one length, got shapes {s.shape} and {a.shape}"
        )
    if len(s) == 0:
        raise ValueError("score_histogram: no scores given")
    if not np.all(np.isfinite(s)):
        raise ValueError("score_histogram: scores hold NaN or infinite values")
    if not np.all((a == 0) | (a == 1)):
        raise ValueError("score_histogram: anomalous must hold only 0/1 (or False/True)")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"score_histogram: bins must be a positive integer, got {bins!r}")
    a = a.astype(bool)
    edges = np.histogram_bin_edges(s, bins=bins)
    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    for mask, label, colour in ((~a, "normal", NORMAL_COLOUR), (a, "anomalous", ANOMALY_COLOUR)):
        if mask.any():
            ax.hist(s[mask], bins=edges, density=True, alpha=0.55, color=colour, label=f"{label} (n={int(mask.sum())})")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("density")
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def roc_curves(curves: Mapping[str, tuple], path, title: str = "") -> Path:
    """One ROC curve per label, `{label: (fpr, tpr, auc)}`, with the chance diagonal."""
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("roc_curves: expected a non-empty dict {label: (fpr, tpr, auc)}")
    checked = []
    for label, curve in curves.items():
        if not isinstance(curve, (tuple, list)) or len(curve) != 3:
            raise ValueError(f"roc_curves: curve '{label}' must be (fpr, tpr, auc)")
        fpr = _array(curve[0], f"roc_curves: '{label}' fpr")
        tpr = _array(curve[1], f"roc_curves: '{label}' tpr")
        if fpr.ndim != 1 or tpr.ndim != 1 or len(fpr) != len(tpr) or len(fpr) < 2:
            raise ValueError(
                f"roc_curves: '{label}' fpr and tpr must be 1-D of one length >= 2, got shapes "
                f"{fpr.shape} and {tpr.shape}"
            )
        if (
            not (np.all(np.isfinite(fpr)) and np.all(np.isfinite(tpr)))
            or fpr.min() < 0
            or fpr.max() > 1
            or tpr.min() < 0
            or tpr.max() > 1
        ):
            raise ValueError(f"roc_curves: '{label}' fpr and tpr must lie in [0, 1]")
        auc = float(curve[2])
        if not 0.0 <= auc <= 1.0:
            raise ValueError(f"roc_curves: '{label}' AUC {auc} is not in [0, 1]")
        checked.append((str(label), fpr, tpr, auc))
    fig = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="chance")
    colours = _palette(len(checked))
    for (label, fpr, tpr, auc), colour in zip(checked, colours):
        ax.plot(fpr, tpr, lw=1.4, color=colour, label=f"{label} (AUC {auc:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def image_rows(rows: Sequence[tuple], path, title: str = "") -> Path:
    """Rows of images, `[(row_title, images (N, C, 32, 32))]`: e.g. most and least anomalous (ADGAN Figs. 4-6)."""
    rows = list(rows)
    if not rows:
        raise ValueError("image_rows: no rows given; pass a list of (title, images)")
    checked = []
    for row_title, images in rows:
        images = list(images)
        if not images:
            raise ValueError(f"image_rows: row '{row_title}' holds no images")
        checked.append(
            (str(row_title), [_image(x, f"image_rows: '{row_title}' image {i}") for i, x in enumerate(images)])
        )
    n_cols = max(len(images) for _, images in checked)
    fig = Figure(figsize=(1.2 * n_cols + 1.2, 1.35 * len(checked) + 0.4), dpi=100, layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(checked), n_cols, squeeze=False))
    for r, (row_title, images) in enumerate(checked):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c], cmap="gray" if images[c].ndim == 2 else None, vmin=0, vmax=1)
            else:
                ax.set_axis_off()
        axes[r, 0].set_ylabel(row_title, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


# --- the papers' figures for one dataset and protocol ---


def write_figures(params, dataset: str, protocol: str, out_dir: Path) -> list[Path]:
    """The papers' figures for one dataset and protocol, from scores, images and the main model.

    - ROC curves averaged over classes, one per method (ADGAN Fig. 3);
    - the main model's ROC curve per class and its score histogram for
      `report.figure_class` (ADAE Fig. 4b);
    - x, G(x), D(G(x)) for a normal and an anomalous test image of each class,
      when the main model can reconstruct (ADAE Fig. 2);
    - the most and least anomalous test images of `report.figure_class`
      (ADGAN Figs. 4-6), ranked by `report.ranking_method` when it ran, else the main model.
    The mean ROC curves average over classes and training seeds; the figures of one model show the
    first training seed's (run.seeds[0]).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{dataset}_{protocol}"
    written = []
    tables = {}
    for m in params.methods_for(dataset):
        table, reason = read_scores(layout.scores(dataset, protocol, m))
        if reason is None:
            tables[m] = table

    curves = {}
    for method, table in tables.items():
        roc = mean_roc(table)
        aucs = [roc_auc_score(g["anomalous"], g["score"]) for _, g in table.groupby(["class", "seed"])]
        curves[method] = (roc["fpr"].to_numpy(), roc["tpr"].to_numpy(), float(np.mean(aucs)))
    written.append(
        roc_curves(curves, out_dir / f"{stem}_mean_roc.png", f"{dataset}, {protocol}: ROC averaged over classes")
    )

    main, seed = params.main_method, params.seeds[0]
    tables = {m: table[table["seed"] == seed] for m, table in tables.items()}
    names = layout.prepared_meta(dataset)["classes"]
    classes = sorted(tables[main]["class"].unique().tolist())
    # report.figure_class names a class of the image datasets; the brain data has one class (normal), always shown
    figure_class = classes[0] if dataset == BRAIN_DATASET else params.report.figure_class
    if figure_class not in classes:
        raise ValueError(
            f"report.figure_class = {figure_class} is not one of {dataset}'s classes run ({classes}); "
            "set it to one of them"
        )
    per_class = {}
    for cls, group in tables[main].groupby("class"):
        fpr, tpr, _ = roc_curve(group["anomalous"], group["score"])
        per_class[f"class {names[cls]}"] = (fpr, tpr, roc_auc_score(group["anomalous"], group["score"]))
    written.append(
        roc_curves(per_class, out_dir / f"{stem}_{main}_roc_per_class.png", f"{main}, {dataset}, {protocol}")
    )

    chosen = tables[main][tables[main]["class"] == figure_class]
    written.append(
        score_histogram(
            chosen["score"].to_numpy(),
            chosen["anomalous"].to_numpy(),
            out_dir / f"{stem}_{main}_histogram.png",
            f"{main}, {dataset}, {protocol}, class {names[figure_class]}",
        )
    )

    if hasattr(method_class(main), "reconstructions"):
        rows = []
        for cls in classes:
            model = load_model(params, dataset, protocol, main, cls, seed)
            group = tables[main][tables[main]["class"] == cls]
            picks = [group[group["anomalous"] == flag]["index"].iloc[0] for flag in (0, 1)]
            images = ImageSet.from_dir(layout.prepared(dataset), np.array(picks))
            g_x, d_g_x = model.reconstructions(images.x)
            for k, kind in enumerate(("normal", "anomalous")):
                title = f"class {names[cls]}: {kind} ({names[images.labels[k]]})"
                rows.append((title, images.x[k].numpy(), g_x[k], d_g_x[k]))
        written.append(reconstruction_grid(rows, out_dir / f"{stem}_{main}_reconstructions.png"))

    ranker = params.report.ranking_method if params.report.ranking_method in tables else main
    ranked = tables[ranker][tables[ranker]["class"] == figure_class].sort_values("score", ascending=False)
    n = params.report.ranking_count
    most, least = ranked["index"].to_numpy()[:n], ranked["index"].to_numpy()[::-1][:n]
    prepared = layout.prepared(dataset)
    written.append(
        image_rows(
            [
                ("most anomalous", ImageSet.from_dir(prepared, most).x.numpy()),
                ("least anomalous", ImageSet.from_dir(prepared, least).x.numpy()),
            ],
            out_dir / f"{stem}_{ranker}_ranked.png",
            f"{ranker}, {dataset}, {protocol}, class {names[figure_class]}",
        )
    )
    return written


def ranked_grid(most: Sequence[tuple], least: Sequence[tuple], path, title: str = "") -> Path:
    """Two rows of `(image (C, 32, 32) in [-1, 1], caption[, flagged])`: most anomalous first, then least
    anomalous. Captions (rank, label, score, p-value) go above each image; a flagged image is framed in red."""
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
            image, caption, *flag = cells[c]
            shown = _image(image, f"ranked_grid: '{row_title}' image {c}")
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(caption, fontsize=7, color="red" if flag and flag[0] else "black")
            if flag and flag[0]:  # flagged at p <= alpha: a red frame
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2.5)
        axes[r, 0].set_ylabel(row_title, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
