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
        if mine is None and theirs is None:
            continue
        if theirs is not None:
            values = [theirs[c] for c in classes]
            rows.append(values + [round(float(np.mean(theirs)), 3)])
            index.append((method, "paper"))
        if mine is not None:
            values = [mine["auroc"][str(c)] for c in classes]
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


def write_tables(dataset: str, protocol: str, metrics_path: Path, classes: list[int], out_dir: Path) -> pd.DataFrame:
    ours = json.loads(Path(metrics_path).read_text())
    table = auroc_table(dataset, protocol, ours, classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{dataset}_{protocol}"
    table.to_csv(stem.with_suffix(".csv"))
    what = "anomalous class" if protocol == "leave_one_class_out" else "normal class"
    header = (f"# AUROC, {dataset}, {protocol.replace('_', '-')} (columns: the {what})\n\n"
              f"Paper rows: {paper.PAPER_SOURCE[protocol]}. Higher is better; "
              "'ours - paper' is our AUROC minus the paper's.\n\n")
    stem.with_suffix(".md").write_text(header + table.reset_index().to_markdown(index=False, floatfmt=".3f") + "\n")
    return table
