"""AUROC and average precision per class, the anomalous class counted as positive."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def class_metrics(scores: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{"auroc": {"0": ..., "mean": ...}, "ap": {...}} from a score table of one method."""
    out: dict[str, dict[str, float]] = {"auroc": {}, "ap": {}}
    for cls, group in scores.groupby("class", sort=True):
        if group["anomalous"].nunique() < 2:
            raise ValueError(f"class {cls}: the test split holds only one kind of image; AUROC is undefined")
        out["auroc"][str(cls)] = round(float(roc_auc_score(group["anomalous"], group["score"])), 4)
        out["ap"][str(cls)] = round(float(average_precision_score(group["anomalous"], group["score"])), 4)
    for name in out:
        out[name]["mean"] = round(float(np.mean(list(out[name].values()))), 4)
    return out


def mean_roc(scores: pd.DataFrame, grid: int = 101) -> pd.DataFrame:
    """ROC curves interpolated on a common false-positive grid and averaged over classes (ADGAN Fig. 3)."""
    fpr_grid = np.linspace(0, 1, grid)
    curves = []
    for _, group in scores.groupby("class"):
        fpr, tpr, _ = roc_curve(group["anomalous"], group["score"])
        curves.append(np.interp(fpr_grid, fpr, tpr))
    return pd.DataFrame({"fpr": fpr_grid, "tpr": np.mean(curves, axis=0)})
