"""The brain study's results: slice-wise AUROC per method, per grade, with uncertainty, and ADAE Fig. 3.

Every BraTS slice is a test item (ADAE 4.2: a slice is a tumour slice when its
segmentation holds a tumour voxel). Per method: the AUROC pooled over all test slices
(as the paper and the DKFZ code compute it), the AUROC within the HGG and the LGG
cases, the average precision, and a 95 % bootstrap interval of the pooled AUROC that
resamples patients, not slices (the slices of one patient are correlated), with
`scipy.stats.bootstrap`. Fig. 3 sets AE, VAE, ceVAE and ADAE side by side with the
paper's value where the paper's text gives one: ADAE's 0.892; the other bars of the
paper's figure are not in its text and are marked so, not guessed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import bootstrap, mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score

from ganad.engine.conformal import flagged
from ganad.errors import DataError
from ganad.evaluation.papers import BRAIN_AUROC
from ganad.files import write_bytes, write_json, write_text

PAPER_AUROC = BRAIN_AUROC  # ADAE Section 5; Fig. 3's AE, VAE and ceVAE bars are not in the paper's text
FIG3 = {"dcae": "AE", "vae": "VAE", "cevae": "ceVAE", "adae": "ADAE"}  # the bars of ADAE Fig. 3, in its order
DEMO_NOTE = (
    "Demo data: healthy template anatomy warped at random, with synthetic lesions. This is a demo of "
    "the pipeline, not a tumour benchmark; point brain.hcp_root and brain.brats_root at HCP and BraTS "
    "copies for the paper's experiment."
)


def slice_scores(scores: pd.DataFrame, slices: pd.DataFrame) -> pd.DataFrame:
    """A method's score table joined with the prepared slices' patient and grade, one row per test slice."""
    table = scores.merge(slices[["index", "subject", "grade"]], on="index", how="left", validate="many_to_one")
    if table["subject"].isna().any():
        raise ValueError(
            "score rows name slices that the prepared brain data does not hold; rerun brain_prepare "
            "and the brain stages after it (`dvc repro brain_report`)"
        )
    return table


REFERENCE = "slice_size_reference"  # each test slice scored by its brain voxel count alone (no model)


def slice_size_scores(slices: pd.DataFrame) -> pd.DataFrame:
    """A score table of every test (BraTS) slice scored by its brain voxel count alone. Tumours sit in the larger
    mid-brain slices, so slice size separates them without any model: the reference a method must beat."""
    test = slices[slices["source"] == "brats"]
    return pd.DataFrame(
        {
            "class": 0,
            "index": test["index"],
            "label": test["label"],
            "anomalous": test["label"],
            "score": test["brain_px"].astype(float),
        }
    )


def _seeds(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The table's rows per training seed (one group when it has no seed column)."""
    return [g for _, g in table.groupby("seed")] if "seed" in table else [table]


def patient_interval(table: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the pooled AUROC (the mean over training seeds when the table holds
    several), resampling patients with their slices: each resample draws patients once and scores every seed's
    model on the same draw."""
    ids = np.unique(table["subject"].to_numpy())
    if len(ids) < 2:
        return float("nan"), float("nan")
    per_seed = []
    for group in _seeds(table):
        codes = np.searchsorted(ids, group["subject"].to_numpy())
        per_seed.append(
            (
                [np.flatnonzero(codes == k) for k in range(len(ids))],
                group["anomalous"].to_numpy(),
                group["score"].to_numpy(),
            )
        )

    def pooled_auroc(sample: np.ndarray) -> float:
        """AUROC as the Mann-Whitney U of tumour over normal slices, divided by the pairs (the same value as
        scikit-learn's, ties counted half, at a third of its cost over a thousand resamples), averaged over seeds."""
        values = []
        for rows_of, y, s in per_seed:
            rows = np.concatenate([rows_of[k] for k in sample.astype(int)])
            tumour = y[rows] == 1
            n_tumour = int(tumour.sum())
            if n_tumour in (0, len(rows)):
                return np.nan
            u = mannwhitneyu(s[rows][tumour], s[rows][~tumour], use_continuity=False, method="asymptotic").statistic
            values.append(u / (n_tumour * (len(rows) - n_tumour)))
        return float(np.mean(values))

    result = bootstrap(
        (np.arange(len(ids)),),
        pooled_auroc,
        vectorized=False,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def method_metrics(table: pd.DataFrame, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Pooled slice-wise AUROC and AP, its patient-bootstrap interval, and the AUROC within each grade: means over
    the training seeds, with the AUROC's standard deviation over them (`auroc_std`, 0 for one seed). With
    p-values (from the healthy validation subjects' slices), the share of tumour-free slices flagged at `alpha`
    (`far_at_alpha`: the tumour volumes come from other scanners than the healthy ones, so the guarantee need
    not hold) and of tumour slices (`detection_at_alpha`), overall and per grade."""
    groups = _seeds(table)
    aurocs = [roc_auc_score(g["anomalous"], g["score"]) for g in groups]
    low, high = patient_interval(table, n_resamples, seed)
    out = {
        "auroc": round(float(np.mean(aurocs)), 4),
        "auroc_std": round(float(np.std(aurocs, ddof=1)) if len(aurocs) > 1 else 0.0, 4),
        "auroc_ci95": [round(low, 4), round(high, 4)],
        "ap": round(float(np.mean([average_precision_score(g["anomalous"], g["score"]) for g in groups])), 4),
    }
    for grade in sorted(table["grade"].unique()):
        within = [g[g["grade"] == grade] for g in groups]
        values = [roc_auc_score(w["anomalous"], w["score"]) for w in within if w["anomalous"].nunique() == 2]
        if values:
            out[f"auroc_{grade}"] = round(float(np.mean(values)), 4)
    if "p_value" in table:
        for suffix, part in [("", groups)] + [
            (f"_{g}", [t[t["grade"] == g] for t in groups]) for g in sorted(table["grade"].unique())
        ]:
            for key, kind in (("far_at_alpha", 0), ("detection_at_alpha", 1)):
                rates = [
                    flagged(t.loc[t["anomalous"] == kind, "p_value"], alpha).mean()
                    for t in part
                    if (t["anomalous"] == kind).any()
                ]
                if rates:
                    out[key + suffix] = round(float(np.mean(rates)), 4)
    return out


def results_table(metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per method: pooled AUROC with its interval, per grade, AP, and the paper's value."""
    grades = sorted(
        {
            k[len("auroc_") :]
            for m in metrics.values()
            for k in m
            if k.startswith("auroc_") and k not in ("auroc_ci95", "auroc_std")
        }
    )
    rows = []
    for method, m in metrics.items():
        if "unavailable" in m:
            rows.append({"method": method, "slice-wise AUROC": "not run (see below)"})
            continue
        low, high = m["auroc_ci95"]
        row = {
            "method": method,
            "slice-wise AUROC": f"{m['auroc']:.3f} [{low:.3f}, {high:.3f}]",
            "std over seeds": f"{m.get('auroc_std', 0.0):.3f}",
        }
        row.update({f"AUROC {g}": f"{m[f'auroc_{g}']:.3f}" if f"auroc_{g}" in m else "" for g in grades})
        row["AP"] = f"{m['ap']:.3f}"
        if "far_at_alpha" in m:  # flagged at p <= alpha (ganad.engine.conformal)
            row["false alarms at α"] = f"{m['far_at_alpha']:.3f}"
            row.update(
                {
                    f"detection at α, {g}": f"{m[f'detection_at_alpha_{g}']:.3f}"
                    for g in grades
                    if f"detection_at_alpha_{g}" in m
                }
            )
        row["paper"] = f"{PAPER_AUROC[method]:.3f}" if method in PAPER_AUROC else ""
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def fig3(metrics: dict[str, dict], path: Path) -> Path:
    """ADAE Fig. 3: slice-wise AUROC of AE, VAE, ceVAE and ADAE, ours (with the patient interval) beside the
    paper's where its text gives the value; then any other method brain.methods ran (a run of other methods
    draws those alone)."""
    ran = [m for m in metrics if m != REFERENCE and "auroc" in metrics[m]]
    shown = [m for m in FIG3 if m in ran] + [m for m in ran if m not in FIG3]
    if not shown:
        raise DataError("no method of brain.methods gave brain scores (each was not run: see its reason above)")
    fig = Figure(figsize=(6.5, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(shown))
    ours = np.array([metrics[m]["auroc"] for m in shown])
    err = np.array(
        [
            [metrics[m]["auroc"] - metrics[m]["auroc_ci95"][0], metrics[m]["auroc_ci95"][1] - metrics[m]["auroc"]]
            for m in shown
        ]
    ).T
    ax.bar(x - 0.2, ours, 0.4, yerr=np.nan_to_num(err), capsize=3, color="#4c72b0", label="ours (95 % CI, patients)")
    for i, m in enumerate(shown):
        if m in PAPER_AUROC:
            ax.bar(i + 0.2, PAPER_AUROC[m], 0.4, color="#dd8452", label="paper (ADAE Section 5)")
            ax.text(i + 0.2, PAPER_AUROC[m] + 0.01, f"{PAPER_AUROC[m]:.3f}", ha="center", fontsize=8)
        else:
            ax.text(i + 0.2, 0.05, "value not in\nthe paper's text", ha="center", fontsize=7, rotation=90)
        ax.text(i - 0.2, ours[i] + 0.01, f"{ours[i]:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, [FIG3.get(m, m) for m in shown])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("slice-wise AUROC")
    ax.set_title("Tumour slices, healthy to tumour (ADAE Fig. 3)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), loc="lower right", fontsize=8)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    return write_bytes(path, buffer.getvalue())


def write_results(metrics: dict[str, dict], prepared: dict, out_dir: Path) -> list[Path]:
    """metrics.json (headline figures for `dvc metrics`), results.md (the table with what the data were) and
    Fig. 3, in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "metrics.json", out_dir / "results.md", out_dir / "fig3_auroc.png"]
    write_json(paths[0], metrics)
    preprocessing = prepared["preprocessing"]
    counts = preprocessing["counts"]
    lines = ["# Brain MRI: slice-wise tumour detection, healthy to tumour (ADAE Section 4.1)", ""]
    if preprocessing["demo"]:
        lines += [f"**{DEMO_NOTE}**", ""]
    lines += [
        "Pooled AUROC over every test slice (the mean over the training seeds, with the standard deviation "
        "over them), with a 95 % bootstrap interval over patients; AUROC within "
        "each grade; the paper's value where its text gives one (ADAE 0.892; the AE, VAE and ceVAE bars of "
        f"its Fig. 3 are not in the text). The last row, `{REFERENCE}`, scores each slice by how much brain "
        "it holds, with no model: tumours sit in the larger mid-brain slices, so a method is worth what it "
        "adds above that row.",
        "",
        results_table(metrics).to_markdown(index=False),
        "",
        f"Data (`reports/brain/prepare.json` has every choice and count): {counts['hcp_subjects']} healthy "
        f"subjects ({counts['slices']['hcp']} slices; {counts['split']['train']} train, "
        f"{counts['split']['val']} validation, split by subject), "
        + ", ".join(f"{n} {g}" for g, n in counts["brats_cases"].items() if n)
        + f" tumour cases ({counts['slices']['brats']} test slices, {counts['tumour_slices']} with tumour); "
        f"modality {preprocessing['modality']}, label rule {preprocessing['label_rule']}, z-scores clipped "
        f"at {preprocessing['clip']}.",
        "",
        *[f"- {m} was not run: {r['unavailable']}" for m, r in metrics.items() if "unavailable" in r],
        "",
        "![Fig. 3](fig3_auroc.png)",
        "",
    ]
    write_text(paths[1], "\n".join(lines))
    fig3(metrics, paths[2])
    return paths
