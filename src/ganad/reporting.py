"""Tables that set our AUROCs beside the papers' (Markdown and CSV per dataset and protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import paper

NOT_RUN = "not yet run"


def auroc_table(dataset: str, protocol: str, ours: dict[str, dict], classes: list[int],
                names: list[str]) -> pd.DataFrame:
    """Rows (method, source) with source in ours / paper / ours - paper; columns the classes (by their names
    in `names`) and the mean.

    Methods a paper reports that we did not run get one row marked as not run;
    the mean of our row is over the classes we ran, the paper's over all ten.
    A dataset the papers did not use has our rows alone.
    """
    paper_rows = paper.paper_rows(dataset, protocol)
    order = paper.TABLE_ORDER[protocol] + [m for m in ours if m not in paper.TABLE_ORDER[protocol]]
    columns = [names[c] for c in classes] + ["mean"]
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


def metric_classes(ours: dict[str, dict]) -> list[int]:
    """The classes the metrics cover (every method that ran has the same)."""
    ran = [r["auroc"] for r in ours.values() if "auroc" in r]
    return sorted(int(c) for c in ran[0] if c != "mean") if ran else []


def write_tables(dataset: str, protocol: str, metrics_path: Path, names: list[str], out_dir: Path,
                 selections: dict[str, dict] | None = None) -> pd.DataFrame:
    ours = json.loads(Path(metrics_path).read_text())
    table = auroc_table(dataset, protocol, ours, metric_classes(ours), names)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{dataset}_{protocol}"
    table.to_csv(stem.with_suffix(".csv"))
    what = "anomalous class" if protocol == "leave_one_class_out" else "normal class"
    source = (f"Paper rows: {paper.PAPER_SOURCE[protocol]}. Higher is better; "
              "'ours - paper' is our AUROC minus the paper's." if paper.paper_rows(dataset, protocol)
              else f"The papers report no {dataset} results: our rows only. Higher is better.")
    header = f"# AUROC, {dataset}, {protocol.replace('_', '-')} (columns: the {what})\n\n{source}\n\n"
    notes = "".join(f"- {m} was not run: {r['unavailable']}\n" for m, r in ours.items() if "unavailable" in r)
    notes += "".join(f"- {m} chose (on training or validation data): {summarise_selected(c)}\n"
                     for m, c in (selections or {}).items() if c)
    body = table.reset_index().to_markdown(index=False, floatfmt=".3f") + "\n"
    stem.with_suffix(".md").write_text(header + body + ("\n" + notes if notes else ""))
    return table
