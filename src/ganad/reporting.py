"""Tables that set our AUROCs beside the papers' (Markdown and CSV per dataset and protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import paper
from .sources import CLASS_NAMES

NOT_RUN = "not yet run"


def auroc_table(dataset: str, protocol: str, ours: dict[str, dict], classes: list[int]) -> pd.DataFrame:
    """Rows (method, source) with source in ours / paper / ours - paper; columns the classes and the mean.

    Methods a paper reports that we did not run get one row marked as not run;
    the mean of our row is over the classes we ran, the paper's over all ten.
    """
    paper_rows = paper.paper_rows(dataset, protocol)
    order = paper.TABLE_ORDER[protocol] + [m for m in ours if m not in paper.TABLE_ORDER[protocol]]
    columns = [CLASS_NAMES[dataset][c] for c in classes] + ["mean"]
    rows, index = [], []
    for method in order:
        mine = ours.get(method)
        theirs = paper_rows.get(method)
        if mine is not None and "unavailable" in mine:
            mine = None
        if mine is None and theirs is None:
            continue
        if theirs is not None:
            values = [theirs[c] for c in classes]
            rows.append(values + [round(float(np.mean(theirs)), 3)])
            index.append((method, "paper"))
        if mine is not None:
            values = [round(mine["auroc"][str(c)], 3) for c in classes]
            rows.append(values + [round(float(np.mean(values)), 3)])
            index.append((method, "ours"))
            if theirs is not None:
                diff = [round(a - b, 3) for a, b in zip(values, (theirs[c] for c in classes))]
                rows.append(diff + [round(float(np.mean(diff)), 3)])
                index.append((method, "ours - paper"))
        else:
            rows.append([NOT_RUN] * len(columns))
            index.append((method, "ours"))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["method", "source"]), columns=columns)


def summarise_selected(selected: dict[str, dict]) -> str:
    """'pca_dim 100 (classes 0-8), 80 (class 9); bandwidth 1.0' from {class: {key: value}}."""
    keys = sorted({k for chosen in selected.values() for k in chosen})
    parts = []
    for key in keys:
        by_value: dict[str, list[str]] = {}
        for cls, chosen in selected.items():
            if key in chosen:
                value = chosen[key]
                text = f"{value:.3g}" if isinstance(value, float) else str(value)
                by_value.setdefault(text, []).append(cls)
        if len(by_value) == 1:
            parts.append(f"{key} {next(iter(by_value))}")
        else:
            parts.append(f"{key} " + ", ".join(f"{v} (classes {' '.join(c)})" for v, c in by_value.items()))
    return "; ".join(parts)


def write_tables(dataset: str, protocol: str, metrics_path: Path, classes: list[int], out_dir: Path,
                 selections: dict[str, dict] | None = None) -> pd.DataFrame:
    ours = json.loads(Path(metrics_path).read_text())
    table = auroc_table(dataset, protocol, ours, classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{dataset}_{protocol}"
    table.to_csv(stem.with_suffix(".csv"))
    what = "anomalous class" if protocol == "leave_one_class_out" else "normal class"
    header = (f"# AUROC, {dataset}, {protocol.replace('_', '-')} (columns: the {what})\n\n"
              f"Paper rows: {paper.PAPER_SOURCE[protocol]}. Higher is better; "
              "'ours - paper' is our AUROC minus the paper's.\n\n")
    notes = "".join(f"- {m} was not run: {r['unavailable']}\n" for m, r in ours.items() if "unavailable" in r)
    notes += "".join(f"- {m} chose (on training or validation data): {summarise_selected(c)}\n"
                     for m, c in (selections or {}).items() if c)
    body = table.reset_index().to_markdown(index=False, floatfmt=".3f") + "\n"
    stem.with_suffix(".md").write_text(header + body + ("\n" + notes if notes else ""))
    return table


def write_figures(params, dataset: str, protocol: str, out_dir: Path) -> list[Path]:
    """The papers' figures for one dataset and protocol, from scores, images and the main model.

    - ROC curves averaged over classes, one per method (ADGAN Fig. 3);
    - the main model's ROC curve per class and its score histogram for
      `report.figure_class` (ADAE Fig. 4b);
    - x, G(x), D(G(x)) for a normal and an anomalous test image of each class,
      when the main model can reconstruct (ADAE Fig. 2);
    - the most and least anomalous test images of `report.figure_class`
      (ADGAN Figs. 4-6), ranked by `report.ranking_method` when it ran, else the main model.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from . import figures, layout
    from .device import resolve_device
    from .images import ImageSet
    from .methods import get_method
    from .metrics import mean_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{dataset}_{protocol}"
    written = []
    from .pipeline import read_scores

    tables = {}
    for m in params.all_methods():
        table, reason = read_scores(layout.scores(dataset, protocol, m))
        if reason is None:
            tables[m] = table

    curves = {}
    for method, table in tables.items():
        roc = mean_roc(table)
        aucs = [roc_auc_score(g["anomalous"], g["score"]) for _, g in table.groupby("class")]
        curves[method] = (roc["fpr"].to_numpy(), roc["tpr"].to_numpy(), float(np.mean(aucs)))
    written.append(figures.roc_curves(curves, out_dir / f"{stem}_mean_roc.png",
                                      f"{dataset}, {protocol}: ROC averaged over classes"))

    main = params.main_method
    per_class = {}
    for cls, group in tables[main].groupby("class"):
        fpr, tpr, _ = roc_curve(group["anomalous"], group["score"])
        per_class[f"class {CLASS_NAMES[dataset][cls]}"] = (fpr, tpr, roc_auc_score(group["anomalous"], group["score"]))
    written.append(figures.roc_curves(per_class, out_dir / f"{stem}_{main}_roc_per_class.png",
                                      f"{main}, {dataset}, {protocol}"))

    figure_class = params.report.figure_class
    chosen = tables[main][tables[main]["class"] == figure_class]
    written.append(figures.score_histogram(
        chosen["score"].to_numpy(), chosen["anomalous"].to_numpy(), out_dir / f"{stem}_{main}_histogram.png",
        f"{main}, {dataset}, {protocol}, class {CLASS_NAMES[dataset][figure_class]}"))

    method_cls = get_method(main)
    if hasattr(method_cls, "reconstructions"):
        rows = []
        for cls in params.classes:
            model = method_cls.load(layout.model(dataset, protocol, main, cls), resolve_device(params.device))
            group = tables[main][tables[main]["class"] == cls]
            picks = [group[group["anomalous"] == flag]["index"].iloc[0] for flag in (0, 1)]
            images = ImageSet.from_dir(layout.prepared(dataset), np.array(picks))
            g_x, d_g_x = model.reconstructions(images.x)
            for k, kind in enumerate(("normal", "anomalous")):
                title = f"class {CLASS_NAMES[dataset][cls]}: {kind} ({CLASS_NAMES[dataset][images.labels[k]]})"
                rows.append((title, images.x[k].numpy(), g_x[k], d_g_x[k]))
        written.append(figures.reconstruction_grid(rows, out_dir / f"{stem}_{main}_reconstructions.png"))

    ranker = params.report.ranking_method if params.report.ranking_method in tables else main
    ranked = tables[ranker][tables[ranker]["class"] == figure_class].sort_values("score", ascending=False)
    n = params.report.ranking_count
    most, least = ranked["index"].to_numpy()[:n], ranked["index"].to_numpy()[::-1][:n]
    prepared = layout.prepared(dataset)
    written.append(figures.image_rows(
        [("most anomalous", ImageSet.from_dir(prepared, most).x.numpy()),
         ("least anomalous", ImageSet.from_dir(prepared, least).x.numpy())],
        out_dir / f"{stem}_{ranker}_ranked.png",
        f"{ranker}, {dataset}, {protocol}, class {CLASS_NAMES[dataset][figure_class]}"))
    return written
