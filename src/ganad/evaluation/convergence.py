"""How far a method is from its own converged result: study splits from training data, and plateaus.

A budget (how many updates a method trains) is a setting like any other, so it is chosen without the
test images. The convergence study (benchmarks/convergence.py) trains each method on a *study split*
drawn from the official training images only: some normal images held out, anomalies from the
training images of the other classes, the rest of the normals for training and validation. It logs the
validation criterion and the study AUROC at regular update counts; this module holds the split and
what is read off the curves:

- the plateau AUROC: the mean study AUROC over the last `tail` evaluations of the run (which stopped when
  the validation criterion stopped improving, or at a stated cap);
- the updates (and CPU seconds) to reach 90 % and 95 % of the plateau, counted on the gain above chance:
  the first evaluation whose AUROC reaches 0.5 + f (plateau - 0.5) and stays there (the running minimum
  from that point on), so that a curve that swings is not credited with its first lucky peak;
- a budget's fraction of the plateau: (AUROC at that budget - 0.5) / (plateau - 0.5), read off the curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganad.data.protocols import anomaly_labels

# the anomalous share of a study test set, as in the protocols' test splits: leave-one-class-out holds one
# class of ten among normals, one-class-normal nine classes beside the normal one
ANOMALOUS_SHARE = {"leave_one_class_out": 0.1, "one_class_normal": 0.9}


def study_split(
    labels: np.ndarray, protocol: str, cls: int, test_size: int, val_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Indices into the official TRAINING images (`labels`) of one class's study split: train and val hold
    normal images only; test holds held-out normals and anomalies in the protocol's proportions. No index of
    the official test images can appear: the caller passes the training labels alone."""
    rng = np.random.default_rng([seed, cls, 7])
    anomalous = anomaly_labels(protocol, labels, cls).astype(bool)
    normals, anomalies = rng.permutation(np.flatnonzero(~anomalous)), rng.permutation(np.flatnonzero(anomalous))
    n_anomalous = int(round(ANOMALOUS_SHARE[protocol] * test_size))
    n_normal = test_size - n_anomalous
    if n_normal >= len(normals) // 2 or n_anomalous > len(anomalies):
        raise ValueError(
            f"class {cls}: a study test set of {test_size} needs {n_normal} normal and {n_anomalous} anomalous "
            f"training images; there are {len(normals)} and {len(anomalies)}"
        )
    rest = normals[n_normal:]
    n_val = int(round(val_fraction * len(rest)))
    return {
        "train": np.sort(rest[n_val:]),
        "val": np.sort(rest[:n_val]),
        "test": np.sort(np.concatenate([normals[:n_normal], anomalies[:n_anomalous]])),
    }


def settled(auroc: np.ndarray, level: float) -> int | None:
    """The first index from which the curve never falls below `level` again, or None."""
    below = np.flatnonzero(np.asarray(auroc) < level)
    first = 0 if not len(below) else int(below[-1]) + 1
    return first if first < len(auroc) else None


# a plateau closer to chance than this has no gain to take shares of
AT_CHANCE = 0.02


def plateau_summary(curve: pd.DataFrame, tail: int = 3) -> dict:
    """One run's curve (columns updates, cpu_s, study_auroc; one row per evaluation, in order): its plateau
    AUROC and the updates and CPU seconds to 90 % and 95 % of it (NaN when never reached for good).

    The gain is counted from chance towards the plateau on whichever side of 0.5 it lies: a method whose
    scores order the classes the wrong way round (reconstruction errors that rank a held-out digit 1 as the
    most normal) also converges, to an AUROC below 0.5, and its budget is read the same way."""
    curve = curve.sort_values("updates").reset_index(drop=True)
    auroc = curve["study_auroc"].to_numpy(dtype=float)
    plateau = float(np.mean(auroc[-tail:]))
    out = {"plateau_auroc": plateau, "evaluations": len(curve), "last_updates": int(curve["updates"].iloc[-1])}
    side = np.sign(plateau - 0.5)
    for share in (90, 95):
        level = share / 100 * abs(plateau - 0.5)
        first = settled(side * (auroc - 0.5), level) if abs(plateau - 0.5) >= AT_CHANCE else None
        out[f"updates_{share}"] = float(curve["updates"].iloc[first]) if first is not None else float("nan")
        out[f"cpu_s_{share}"] = float(curve["cpu_s"].iloc[first]) if first is not None else float("nan")
    return out


def fraction_of_plateau(curve: pd.DataFrame, updates: float, plateau: float) -> float:
    """The AUROC gain above chance at `updates` (the last evaluation at or before it) as a share of the
    plateau's gain, on the plateau's side of chance; NaN when the curve does not start by then or the
    plateau is at chance."""
    before = curve[curve["updates"] <= updates].sort_values("updates")
    if before.empty or abs(plateau - 0.5) < AT_CHANCE:
        return float("nan")
    return float((before["study_auroc"].iloc[-1] - 0.5) / (plateau - 0.5))


def mean_curve(curves: pd.DataFrame) -> pd.DataFrame:
    """The class-mean curve of one method and protocol: each class's AUROC and CPU seconds interpolated on the
    union of their update counts, up to where every class's curve reaches, and averaged."""
    groups = [g.sort_values("updates") for _, g in curves.groupby("class", sort=True)]
    end = min(float(g["updates"].iloc[-1]) for g in groups)
    grid = np.unique(np.concatenate([g["updates"].to_numpy(dtype=float) for g in groups]))
    grid = grid[grid <= end]
    interpolate = {
        column: np.mean([np.interp(grid, g["updates"], g[column]) for g in groups], axis=0)
        for column in ("study_auroc", "cpu_s")
    }
    return pd.DataFrame({"updates": grid, **interpolate})


def summarise(curves: pd.DataFrame, tail: int = 3) -> pd.DataFrame:
    """Per method, protocol and class, and per method and protocol on the class-mean curve (class 'mean'), the
    plateau summary of a curves table (columns method, protocol, class, updates, cpu_s, study_auroc)."""
    rows = [
        {"method": m, "protocol": p, "class": str(c), **plateau_summary(g, tail)}
        for (m, p, c), g in curves.groupby(["method", "protocol", "class"], sort=True)
    ]
    rows += [
        {"method": m, "protocol": p, "class": "mean", **plateau_summary(mean_curve(g), tail)}
        for (m, p), g in curves.groupby(["method", "protocol"], sort=True)
    ]
    return pd.DataFrame(rows)
