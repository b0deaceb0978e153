"""Floors: scorers that learn nothing, scored on the same splits as every method.

A method's AUROC means little until it is set beside what needs no training at all. Two floors,
computed by the evaluate stage for every dataset, protocol and class from the same training and test
images the methods get (no test image informs them; they have no settings to choose):

- `floor_mean_image`: the L2 distance of a test image to the mean normal training image;
- `floor_intensity`: how far a test image's mean intensity (for digits, the amount of ink) lies from the
  mean intensity of the normal training images, |mean(x) - mean over training images of mean(x)|. Both
  directions count as anomalous, so the floor needs no anomaly label to pick a sign.

A method whose interval does not clear the higher floor is marked on the results page (`floor_verdict`):
its class-mean AUROC's 95 % interval combines the per-class bootstrap intervals over test images as
independent estimates, mean +- 1.96 sqrt(sum_c se_c^2) / C with se_c = (high_c - low_c) / (2 x 1.96).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ganad.data.protocols import anomaly_labels, load_split, split_classes
from ganad.engine.conformal import p_values
from ganad.runtime import layout

FLOORS = ("floor_mean_image", "floor_intensity")
Z = 1.959964  # the normal quantile of a two-sided 95 % interval


def unit_range(images: np.ndarray) -> np.ndarray:
    """Prepared images as float32 in [-1, 1] (uint8 pixels are scaled; float images are stored so already)."""
    x = np.asarray(images, dtype=np.float32)
    return x / 127.5 - 1.0 if images.dtype == np.uint8 else x


def floor_scores(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """Each floor's score of every test image, from the normal training images alone (N, C, H, W in [-1, 1])."""
    mean_image = train.mean(axis=0)
    train_intensity = train.reshape(len(train), -1).mean(axis=1).mean()
    return {
        "floor_mean_image": np.sqrt(((test - mean_image) ** 2).reshape(len(test), -1).sum(axis=1)),
        "floor_intensity": np.abs(test.reshape(len(test), -1).mean(axis=1) - train_intensity),
    }


def floor_aurocs(train: np.ndarray, test: np.ndarray, anomalous: np.ndarray) -> dict[str, float]:
    """Each floor's AUROC on one split (normal training images, test images, the test images' anomaly labels):
    the level a method's AUROC on the same split has to clear."""
    scores = floor_scores(train, test)
    return {name: float(roc_auc_score(np.asarray(anomalous, dtype=bool), scores[name])) for name in FLOORS}


def banded_auroc(anomalous: np.ndarray, scores: np.ndarray, covariate: np.ndarray, bands: int = 5) -> float:
    """The AUROC within bands of a covariate (for digits: the image's mean intensity, the amount of ink), averaged
    with the bands' sizes as weights: how well `scores` rank anomalies among images of about the same
    brightness. A score that only measures brightness falls to about 0.5 here, however high its plain AUROC.
    Bands are quantiles of the covariate over these images; a band without both kinds of image is left out
    (NaN when none has both)."""
    anomalous, scores, covariate = (np.asarray(a).ravel() for a in (anomalous, scores, covariate))
    anomalous = anomalous.astype(bool)
    edges = np.quantile(covariate, np.linspace(0, 1, bands + 1)[1:-1])
    band = np.searchsorted(edges, covariate, side="right")
    total, weight = 0.0, 0
    for b in np.unique(band):
        inside = band == b
        if 0 < anomalous[inside].sum() < inside.sum():
            total += inside.sum() * roc_auc_score(anomalous[inside], scores[inside])
            weight += int(inside.sum())
    return total / weight if weight else float("nan")


def floor_tables(dataset: str, protocol: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every floor's score table over the classes of one dataset's split, in the score files' columns (the floors
    do not train, so they have one row per test image, under the run's first training seed)."""
    images = np.load(layout.prepared(dataset) / "images.npy", mmap_mode="r")
    labels = np.load(layout.prepared(dataset) / "labels.npy", mmap_mode="r")
    split_path = layout.splits(dataset, protocol)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in FLOORS}
    for cls in split_classes(split_path):
        split = load_split(split_path, cls)
        test_labels = np.asarray(labels[split["test"]])
        train = unit_range(images[split["train"]])
        scores = floor_scores(train, unit_range(images[split["test"]]))
        calibration = floor_scores(train, unit_range(images[split["val"]]))  # for the p-values, as every method's
        for name in FLOORS:
            parts[name].append(
                pd.DataFrame(
                    {
                        "class": cls,
                        "seed": seed,
                        "index": split["test"],
                        "label": test_labels,
                        "anomalous": anomaly_labels(protocol, test_labels, cls),
                        "score": scores[name],
                        "p_value": p_values(calibration[name], scores[name]),
                    }
                )
            )
    return {name: pd.concat(tables, ignore_index=True) for name, tables in parts.items()}


def mean_interval(detail: pd.DataFrame) -> pd.DataFrame:
    """Per method: the class-mean AUROC (mean over seeds) and its 95 % interval over test images, combining the
    per-class bootstrap intervals as independent estimates (averaged over seeds). Columns: method, auroc, low,
    high."""
    se = (detail["auroc_high"] - detail["auroc_low"]) / (2 * Z)
    per_seed = (
        detail.assign(var=se**2)
        .groupby(["method", "seed"], sort=False)
        .agg(auroc=("auroc", "mean"), var=("var", "sum"), classes=("auroc", "size"))
    )
    per_seed["half"] = Z * np.sqrt(per_seed["var"]) / per_seed["classes"]
    out = per_seed.groupby("method", sort=False)[["auroc", "half"]].mean()
    low, high = out["auroc"] - out["half"], out["auroc"] + out["half"]
    return pd.DataFrame({"method": out.index, "auroc": out["auroc"], "low": low, "high": high}).reset_index(drop=True)


def floor_verdicts(detail: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """{method: (class-mean AUROC minus the higher floor's, verdict)}: 'clears the floor' when the method's
    interval lies above the higher floor, 'below the floor' when its AUROC does not exceed it, else 'does not
    clear the floor' (above it, within the uncertainty). Empty when the detail holds no floor."""
    intervals = mean_interval(detail).set_index("method")
    floors = [f for f in FLOORS if f in intervals.index]
    if not floors:
        return {}
    floor = max(float(intervals.loc[f, "auroc"]) for f in floors)
    verdicts = {}
    for method, row in intervals.iterrows():
        if method in FLOORS:
            continue
        if row["auroc"] <= floor:
            verdict = "below the floor"
        elif row["low"] <= floor:
            verdict = "does not clear the floor"
        else:
            verdict = "clears the floor"
        verdicts[method] = (float(row["auroc"]) - floor, verdict)
    return verdicts
