"""AUROC and average precision per class and training seed, the anomalous class counted as positive, with a
bootstrap interval over test images; their summary over seeds; and paired comparisons between methods.

Uncertainty has two sources and both are shown: the training seed (a method run again gives another model:
mean and standard deviation over run.seeds) and the finite test set (a 95 % bootstrap interval of each
AUROC over the test images, per seed, by `scipy.stats.bootstrap`). "Method A beats B" is a Wilcoxon
signed-rank test over classes (`scipy.stats.wilcoxon`), the p-values of one table adjusted together
(Benjamini-Hochberg, `scipy.stats.false_discovery_control`).
"""

from __future__ import annotations

import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from scipy.stats import DegenerateDataWarning, bootstrap, false_discovery_control, wilcoxon
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ganad.engine.conformal import flagged

CONFIDENCE = 0.95
RESAMPLES = 1000
# the operating points (`operating_point`): flagged at p <= alpha, and the detection at a fixed false-alarm rate
OPERATING_COLUMNS = ["far_at_alpha", "detection_at_alpha", "detection_at_5pct_far"]
DETAIL_COLUMNS = [
    "method",
    "seed",
    "class",
    "auroc",
    "auroc_low",
    "auroc_high",
    "ap",
    "n_test",
    "n_anomalous",
    *OPERATING_COLUMNS,
]
FIXED_FAR = 0.05


def _resampled_auroc(anomalous: np.ndarray, scores: np.ndarray):
    """AUROC as a function of resampled test-image indices, vectorised over resamples: the Mann-Whitney count
    of (anomalous, normal) pairs ordered right, ties counted half (scikit-learn's value on the same images),
    from per-rank counts, so that a thousand resamples of 14,000 images cost milliseconds, not a sort each."""
    _, rank = np.unique(scores, return_inverse=True)
    n_ranks = int(rank.max()) + 1
    positive = anomalous.astype(bool)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.moveaxis(np.asarray(idx, dtype=np.int64), axis, -1)
        shape, idx = idx.shape[:-1], idx.reshape(-1, idx.shape[-1])
        codes = np.arange(len(idx))[:, None] * n_ranks + rank[idx]
        pos = positive[idx]
        size = len(idx) * n_ranks
        n_pos = np.bincount(codes[pos], minlength=size).reshape(len(idx), n_ranks)
        n_neg = np.bincount(codes[~pos], minlength=size).reshape(len(idx), n_ranks)
        below = np.cumsum(n_neg, axis=1) - n_neg
        pairs = n_pos.sum(1) * n_neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((n_pos * (below + 0.5 * n_neg)).sum(1) / pairs).reshape(shape)

    return statistic


def auroc_interval(
    anomalous: np.ndarray, scores: np.ndarray, seed: int = 0, n_resamples: int = RESAMPLES
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the AUROC, resampling test images with replacement."""
    anomalous, scores = np.asarray(anomalous), np.asarray(scores, dtype=float)
    with warnings.catch_warnings():
        # scipy warns (and gives NaN) when every resample has the same AUROC, e.g. 1.0 on a perfectly separated
        # test split; the interval is then that value, which the percentiles below give
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(
            (np.arange(len(scores)),),
            _resampled_auroc(anomalous, scores),
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        tail = 100 * (1 - CONFIDENCE) / 2
        low, high = np.nanpercentile(result.bootstrap_distribution, [tail, 100 - tail])
    return float(low), float(high)


def operating_point(anomalous: np.ndarray, scores: np.ndarray, p: np.ndarray | None, alpha: float) -> tuple:
    """(false-alarm rate on the normal images, detection rate on the anomalous ones) when every image with p-value
    <= `alpha` is flagged (NaN, NaN without p-values), and the detection rate at the threshold whose false-alarm
    rate on these normals is at most FIXED_FAR (read off the test ROC: a benchmark's operating point, not a
    threshold anyone could set without anomaly labels)."""
    anomalous = np.asarray(anomalous).astype(bool)
    fpr, tpr, _ = roc_curve(anomalous, scores)
    at_fixed = float(tpr[fpr <= FIXED_FAR + 1e-12].max())
    if p is None:
        return float("nan"), float("nan"), at_fixed
    hit = flagged(p, alpha)
    return float(hit[~anomalous].mean()), float(hit[anomalous].mean()), at_fixed


def class_metrics(
    scores: pd.DataFrame, method: str = "", n_resamples: int = RESAMPLES, alpha: float = 0.05
) -> pd.DataFrame:
    """One row per (seed, class) of one method's score table: AUROC, its bootstrap interval, AP, test sizes, and
    the operating points at `alpha` (`operating_point`)."""
    rows = []
    seeds = scores["seed"] if "seed" in scores else pd.Series(0, index=scores.index)
    for (seed, cls), group in scores.groupby([seeds, "class"], sort=True):
        y, s = group["anomalous"].to_numpy(), group["score"].to_numpy()
        if len(np.unique(y)) < 2:
            raise ValueError(f"class {cls}: the test split holds only one kind of image; AUROC is undefined")
        low, high = auroc_interval(y, s, seed=int(seed) * 1000 + int(cls), n_resamples=n_resamples)
        p = group["p_value"].to_numpy() if "p_value" in group else None
        rows.append(
            (
                method,
                int(seed),
                int(cls),
                roc_auc_score(y, s),
                low,
                high,
                average_precision_score(y, s),
                len(y),
                int(y.sum()),
                *operating_point(y, s, p, alpha),
            )
        )
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


def class_metrics_of(
    tables: dict[str, pd.DataFrame], processes: int = 1, alpha: float = 0.05
) -> dict[str, pd.DataFrame]:
    """`class_metrics` of each method's score table ({method: table}), in a pool of `processes` when > 1.

    The pool is spawned, not forked: a stage (or a test) that has run torch or OpenMP before can hang in a
    forked child. The bootstraps are seeded per (seed, class), so the pool gives the serial result exactly."""
    if processes <= 1 or len(tables) <= 1:
        return {method: class_metrics(table, method, alpha=alpha) for method, table in tables.items()}
    with ProcessPoolExecutor(min(processes, len(tables)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            method: pool.submit(class_metrics, table, method, RESAMPLES, alpha) for method, table in tables.items()
        }
        return {method: future.result() for method, future in futures.items()}


def seed_summary(detail: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Per method: the mean over seeds of each class's metric and of the class mean, the standard deviation over
    seeds (ddof 1; 0 with one seed) and the number of seeds. Columns: method, class ('mean' for the class
    mean), mean, std, n."""
    per_seed_mean = detail.groupby(["method", "seed"], sort=False)[metric].mean().reset_index().assign(cls="mean")
    per_class = detail.rename(columns={"class": "cls"})[["method", "seed", "cls", metric]]
    both = pd.concat([per_class.assign(cls=per_class["cls"].astype(str)), per_seed_mean], ignore_index=True)
    out = (
        both.groupby(["method", "cls"], sort=False)[metric]
        .agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n="count")
        .reset_index()
    )
    return out.rename(columns={"cls": "class"})


def headline(detail: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{method: {auroc: mean over seeds of the class-mean AUROC, auroc_std: its std over seeds, and each operating
    point's class mean (mean over seeds; null where there are no p-values)}}, rounded to 4."""
    out = {}
    for metric in ["auroc", *OPERATING_COLUMNS]:
        if metric not in detail:
            continue
        summary = seed_summary(detail, metric)
        for row in summary[summary["class"] == "mean"].itertuples():
            entry = out.setdefault(row.method, {})
            entry[metric] = round(float(row.mean), 4) if np.isfinite(row.mean) else None
            if metric == "auroc":
                entry["auroc_std"] = round(float(row.std), 4)
    return out


def paired_comparisons(detail: pd.DataFrame, main: str) -> pd.DataFrame:
    """`main` against every other method, paired over classes (each class's AUROC averaged over seeds):
    the mean difference (main - other), the classes where main is higher, the Wilcoxon signed-rank p-value
    (two-sided) and the p-values adjusted for the table's comparisons (Benjamini-Hochberg)."""
    by_class = detail.groupby(["method", "class"])["auroc"].mean().unstack("class")
    rows = []
    for other in [m for m in by_class.index if m != main]:
        diff = (by_class.loc[main] - by_class.loc[other]).dropna()
        p = float(wilcoxon(diff).pvalue) if len(diff) and np.any(diff != 0) else 1.0
        rows.append((other, round(float(diff.mean()), 4), int((diff > 0).sum()), len(diff), p))
    table = pd.DataFrame(rows, columns=["method", "difference", "main_higher", "classes", "p"])
    table["p_adjusted"] = false_discovery_control(table["p"]) if len(table) else []
    table["verdict"] = [verdict(main, row.method, row.difference, row.p_adjusted) for row in table.itertuples()]
    return table


def verdict(main: str, other: str, difference: float, p_adjusted: float, level: float = 0.05) -> str:
    if p_adjusted >= level:
        return "no significant difference"
    return f"{main} higher" if difference > 0 else f"{other} higher"


def mean_roc(scores: pd.DataFrame, grid: int = 101) -> pd.DataFrame:
    """ROC curves interpolated on a common false-positive grid and averaged over classes and seeds (ADGAN Fig. 3)."""
    fpr_grid = np.linspace(0, 1, grid)
    curves = []
    keys = ["class", "seed"] if "seed" in scores else ["class"]
    for _, group in scores.groupby(keys):
        fpr, tpr, _ = roc_curve(group["anomalous"], group["score"])
        curves.append(np.interp(fpr_grid, fpr, tpr))
    return pd.DataFrame({"fpr": fpr_grid, "tpr": np.mean(curves, axis=0)})
