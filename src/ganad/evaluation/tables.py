"""Tables that set our AUROCs, with their uncertainty, beside the papers', and the results page.

Per dataset and protocol (reports/tables/<dataset>_<protocol>.{md,csv}): every class's AUROC as the
mean over training seeds with its standard deviation, the papers' row and the difference. The results
page (reports/results.md) gathers the headline of each: mean AUROC ± std over seeds, the typical 95 %
bootstrap interval over test images, the main model against every other method (Wilcoxon over
classes), the leak audit, the main model's per-class intervals, the budgets and the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ganad.errors import DataError
from ganad.evaluation import papers as paper
from ganad.evaluation.convergence import (
    UNDER_TRAINED,
    budget_verdicts,
    data_identity,
    paper_budgets,
    run_budgets,
)
from ganad.evaluation.floors import FLOORS, floor_verdicts, mean_interval
from ganad.evaluation.metrics import DETAIL_COLUMNS, OPERATING_COLUMNS, paired_comparisons, seed_summary
from ganad.files import read_csv, read_json, write_text

NOT_RUN = "not yet run"


def _pm(mean: float, std: float, n: int = 2) -> str:
    """mean ± std over seeds; the mean alone from one seed, which has no spread to show."""
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def auroc_table(
    dataset: str,
    protocol: str,
    detail: pd.DataFrame,
    unavailable: dict[str, str],
    classes: list[int],
    names: list[str],
    methods: list[str],
) -> pd.DataFrame:
    """Rows (method, source) with source in ours (mean over seeds) / ours std (over seeds) / paper / ours - paper;
    columns the classes (by their names in `names`), the mean and the number of seeds.

    Methods a paper reports that we did not run get one row marked as not run; the mean of our row is the
    mean over seeds of each seed's class mean, the paper's the mean over its ten classes. A dataset the
    papers did not use has our rows alone.
    """
    paper_rows = paper.paper_rows(dataset, protocol)
    order = paper.TABLE_ORDER[protocol] + [m for m in methods if m not in paper.TABLE_ORDER[protocol]]
    order += [f for f in FLOORS if f not in order]  # the scorers that learn nothing, last
    summary = seed_summary(detail) if len(detail) else pd.DataFrame(columns=["method", "class", "mean", "std", "n"])
    columns = [names[c] for c in classes] + ["mean", "seeds"]
    rows, index = [], []
    for method in order:
        mine = summary[summary["method"] == method].set_index("class") if method not in unavailable else None
        if mine is not None and mine.empty:
            mine = None
        theirs = paper_rows.get(method)
        if mine is None and theirs is None:
            continue
        if theirs is not None:
            rows.append([theirs[c] for c in classes] + [round(float(np.mean(theirs)), 3), np.nan])
            index.append((method, "paper"))
        if mine is not None:
            keys = [str(c) for c in classes] + ["mean"]
            n = int(mine.loc["mean", "n"])
            rows.append([round(float(mine.loc[k, "mean"]), 3) for k in keys] + [n])
            index.append((method, "ours"))
            rows.append([round(float(mine.loc[k, "std"]), 3) for k in keys] + [n])
            index.append((method, "ours std"))
            if theirs is not None:
                diff = [round(float(mine.loc[str(c), "mean"]) - theirs[c], 3) for c in classes]
                rows.append(diff + [round(float(np.mean(diff)), 3), np.nan])
                index.append((method, "ours - paper"))
        else:
            rows.append([NOT_RUN] * len(columns))
            index.append((method, "ours"))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["method", "source"]), columns=columns)


def markdown_table(table: pd.DataFrame) -> str:
    """The table with each `ours` row shown as mean ± std and the std rows folded into it."""
    lines = []
    for (method, source), row in table.iterrows():
        if source == "ours std":
            continue
        if source == "ours" and (method, "ours std") in table.index:
            std = table.loc[(method, "ours std")]
            cells = [_pm(row[c], std[c], int(row["seeds"])) for c in table.columns[:-1]] + [str(int(row["seeds"]))]
        else:
            cells = [v if isinstance(v, str) else ("" if pd.isna(v) else f"{v:.3f}") for v in row]
        lines.append([method, source] + cells)
    frame = pd.DataFrame(lines, columns=["method", "source"] + list(table.columns))
    return frame.to_markdown(index=False) + "\n"


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


def summarise_seeds(selected: dict[str, dict]) -> str:
    """`summarise_selected` per training seed ({'seed 0': {class: {key: value}}}), once when the seeds agree."""
    texts = {seed: summarise_selected(by_class) for seed, by_class in selected.items()}
    if len(set(texts.values())) <= 1:
        return next(iter(texts.values()), "")
    return "; ".join(f"{seed}: {text}" for seed, text in texts.items())


def write_tables(
    dataset: str,
    protocol: str,
    detail: pd.DataFrame,
    unavailable: dict[str, str],
    names: list[str],
    methods: list[str],
    out_dir: Path,
    selections: dict[str, dict] | None = None,
) -> pd.DataFrame:
    classes = sorted(int(c) for c in detail["class"].unique())
    table = auroc_table(dataset, protocol, detail, unavailable, classes, names, methods)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{dataset}_{protocol}"
    write_text(stem.with_suffix(".csv"), table.to_csv())
    what = "anomalous class" if protocol == "leave_one_class_out" else "normal class"
    seeds = int(detail["seed"].nunique()) if len(detail) else 0
    source = (
        f"Paper rows: {paper.PAPER_SOURCE[protocol]}. Higher is better; "
        "'ours - paper' is our mean AUROC minus the paper's."
        if paper.paper_rows(dataset, protocol)
        else f"The papers report no {dataset} results: our rows only. Higher is better."
    )
    header = (
        f"# AUROC, {dataset}, {protocol.replace('_', '-')} (columns: the {what})\n\n{source} Our rows: "
        f"mean ± standard deviation over {seeds} training seed(s) (column `seeds`); the 95 % bootstrap "
        f"interval of every AUROC over test images is in `reports/metrics/classes/{dataset}_{protocol}.csv`."
        "\n\n"
    )
    notes = "".join(f"- {m} was not run: {r}\n" for m, r in unavailable.items())
    notes += "".join(
        f"- {m} chose (on training or validation data): {summarise_seeds(c)}\n"
        for m, c in (selections or {}).items()
        if c
    )
    write_text(stem.with_suffix(".md"), header + markdown_table(table) + ("\n" + notes if notes else ""))
    return table


# --- the results page ---------------------------------------------------------------------------------------------


def headline_table(
    dataset: str,
    protocol: str,
    detail: pd.DataFrame,
    unavailable: dict[str, str],
    main: str,
    budgets: dict[str, str] | None = None,
    paper_updates: dict[str, float] | None = None,
    run_updates: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per method: mean AUROC ± std over seeds (n), the paper's mean, the median 95 % interval width
    over test images and the class mean's 95 % interval over them, its distance to the higher floor
    (`ganad.evaluation.floors`) and whether its interval clears it, its training budget against the convergence
    study's plateau (`budgets`, from `ganad.evaluation.convergence.budget_verdicts`; network methods only) and
    against the paper profile's updates (`run_updates` / `paper_updates`), and the main model against it
    (difference over classes, Wilcoxon p adjusted). The floors come last."""
    summary = seed_summary(detail)
    intervals = mean_interval(detail).set_index("method")
    means = summary[summary["class"] == "mean"].set_index("method")
    width = (detail["auroc_high"] - detail["auroc_low"]).groupby(detail["method"]).median()
    compared = paired_comparisons(detail, main).set_index("method") if main in means.index else pd.DataFrame()
    paper_rows = paper.paper_rows(dataset, protocol)
    floors = floor_verdicts(detail)
    rows = []
    order = [main] + [m for m in means.index if m != main and m not in FLOORS] + list(FLOORS)
    for method in order:
        if method not in means.index:
            continue
        row = {
            "method": method,
            "AUROC (mean ± std over seeds)": _pm(
                means.loc[method, "mean"], means.loc[method, "std"], int(means.loc[method, "n"])
            ),
            "seeds": int(means.loc[method, "n"]),
            "paper": f"{np.mean(paper_rows[method]):.3f}" if method in paper_rows else "",
            "95 % CI width (median)": f"{width[method]:.3f}",
            "class mean's 95 % interval": f"[{intervals.loc[method, 'low']:.3f}, {intervals.loc[method, 'high']:.3f}]",
        }
        if method in floors:
            difference, verdict = floors[method]
            row["vs floor"] = f"{difference:+.3f} ({verdict})"
        elif method in FLOORS:
            row["vs floor"] = "a floor: learns nothing"
        if budgets is not None:
            row["budget (updates, share of the study's plateau)"] = budgets.get(method, "")
        if paper_updates is not None and method in paper_updates:
            ours = (run_updates or {}).get(method)
            row["paper's updates (ours as a share)"] = f"{paper_updates[method]:,.0f}" + (
                f" ({100 * ours / paper_updates[method]:.2g} %)" if ours and paper_updates[method] else ""
            )
        if method in compared.index:
            c = compared.loc[method]
            row[f"{main} - method"] = f"{c['difference']:+.3f} ({c['main_higher']}/{c['classes']} classes)"
            row["p (Wilcoxon, BH)"] = f"{c['p_adjusted']:.3g}"
            row["verdict"] = c["verdict"]
        rows.append(row)
    rows += [{"method": m, "AUROC (mean ± std over seeds)": "not run (below)"} for m in unavailable]
    return pd.DataFrame(rows).astype(object).fillna("")


def operating_table(detail: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """One row per method: with every test image of p-value <= `alpha` flagged (`ganad.engine.conformal`), the
    share of test normals flagged (the class mean over seeds ± its std over seeds, and the highest class's, which
    the guarantee bounds too) and the share of anomalies flagged; and the detection rate at a 5 % false-alarm rate
    read off the test ROC. Methods without p-values are left out."""
    if "far_at_alpha" not in detail or detail["far_at_alpha"].isna().all():
        return pd.DataFrame()
    far, hit, fixed = (
        seed_summary(detail, m).query("`class` == 'mean'").set_index("method") for m in OPERATING_COLUMNS
    )
    worst = detail.groupby(["method", "class"])["far_at_alpha"].mean().groupby("method").max()
    rows = []
    for method in far.index:
        if not np.isfinite(far.loc[method, "mean"]):
            continue
        n = int(far.loc[method, "n"])
        rows.append(
            {
                "method": method,
                f"false alarms at α = {alpha:g}": _pm(far.loc[method, "mean"], far.loc[method, "std"], n),
                "highest class": f"{worst[method]:.3f}",
                f"detection at α = {alpha:g}": _pm(hit.loc[method, "mean"], hit.loc[method, "std"], n),
                "detection at 5 % false alarms": _pm(fixed.loc[method, "mean"], fixed.loc[method, "std"], n),
            }
        )
    return pd.DataFrame(rows)


OPERATING_NOTE = (
    "Operating points: each test image is flagged when its conformal p-value, from the same model's scores of the "
    "split's normal validation images, is at most α (decision.alpha; [docs/decisions.md]({docs})). Where the test "
    "normals are like the validation ones, at most a share α of them is flagged in expectation, whatever the "
    "model: 'false alarms' is the share observed (class mean, mean ± std over seeds; 'highest class' the worst "
    "class, whose one calibration draw can put it above α: the bound holds on average over draws), 'detection' "
    "the share of anomalies flagged. 'detection at 5 % false alarms' is read off the test ROC "
    "(a benchmark's comparison; choosing that threshold needs anomaly labels).\n"
)


def leak_table(dataset: str, disjoint: pd.DataFrame, leaky: pd.DataFrame) -> pd.DataFrame:
    """Per method: leave-one-class-out's mean AUROC on the disjoint test split and on the leaky one (the same
    models), the paper's (made under the leaky protocol) and leaky - disjoint."""
    a = seed_summary(disjoint).query("`class` == 'mean'").set_index("method")
    b = seed_summary(leaky).query("`class` == 'mean'").set_index("method")
    # the difference per seed, then its mean and std: the seeds' models are shared, so it is paired
    per_seed = leaky.groupby(["method", "seed"])["auroc"].mean() - disjoint.groupby(["method", "seed"])["auroc"].mean()
    gain = per_seed.groupby("method").agg(["mean", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0])
    paper_rows = paper.paper_rows(dataset, "leave_one_class_out")
    rows = []
    for method in [m for m in a.index if m in b.index]:
        rows.append(
            {
                "method": method,
                "disjoint (ours)": _pm(a.loc[method, "mean"], a.loc[method, "std"], int(a.loc[method, "n"])),
                "leaky (EGBAD's split)": _pm(b.loc[method, "mean"], b.loc[method, "std"], int(b.loc[method, "n"])),
                "paper": f"{np.mean(paper_rows[method]):.3f}" if method in paper_rows else "",
                "leaky - disjoint": f"{gain.loc[method].iloc[0]:+.3f}"
                + (f" ± {gain.loc[method].iloc[1]:.3f}" if int(a.loc[method, "n"]) > 1 else ""),
                "seeds": int(a.loc[method, "n"]),
            }
        )
    return pd.DataFrame(rows)


def class_intervals(detail: pd.DataFrame, method: str, names: list[str]) -> pd.DataFrame:
    """One method's AUROC per class (rows) and seed (columns) with its 95 % bootstrap interval over test images."""
    mine = detail[detail["method"] == method]
    table = mine.assign(cell=[f"{r.auroc:.3f} [{r.auroc_low:.3f}, {r.auroc_high:.3f}]" for r in mine.itertuples()])
    wide = table.pivot(index="class", columns="seed", values="cell")
    wide.index = [names[int(c)] for c in wide.index]
    wide.columns = [f"seed {s}" for s in wide.columns]
    return wide.rename_axis("class").reset_index()


def read_detail(dataset: str, protocol: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The evaluate stage's per-(method, seed, class) table, and the methods that could not run, with why."""
    from ganad.data.protocols import rebuild_metrics
    from ganad.runtime import layout

    rebuild = rebuild_metrics(dataset, protocol)
    headline = read_json(layout.metrics(dataset, protocol), rebuild)
    if not isinstance(headline, dict):
        raise DataError(f"'{layout.metrics(dataset, protocol)}' is not a JSON object; rebuild it with `{rebuild}`")
    unavailable = {m: v["unavailable"] for m, v in headline.items() if isinstance(v, dict) and "unavailable" in v}
    return read_csv(layout.class_metrics(dataset, protocol), rebuild, columns=DETAIL_COLUMNS), unavailable


def split_leak(dataset: str, protocol: str) -> float:
    """The share of the normal test images, over all classes, that training or validation also holds."""
    from ganad.data.protocols import leaked_share, load_split, split_classes
    from ganad.runtime import layout

    labels = np.load(layout.prepared(dataset) / "labels.npy", mmap_mode="r")
    path = layout.splits(dataset, protocol)
    return float(np.mean([leaked_share(load_split(path, c), protocol, labels, c) for c in split_classes(path)]))


BUDGET_KEYS = (
    "epochs",
    "min_steps",
    "budget_scale",
    "width",
    "lr",
    "batch_size",
    "max_train",
    "search_steps",
    "n_seed",
    "k",
)
DIFFERENCES = """\
- Splits: leave-one-class-out's test normals are never trained on (the papers' protocol, from EGBAD's code,
  trains on about 80 % of them; the leak audit above measures what that adds). Epochs and every other
  choice are made on normal validation images carved from training data, never on the test set.
- Budgets: each dataset's budget table above against the `paper` profile (`dvc exp run -S profile=paper`);
  the data each dataset was read from is listed under 'Data' above.
- Uncertainty: the papers give one number per class; here every cell is a mean over training seeds with its
  spread, and each AUROC has a bootstrap interval over the test images.
- Method by method, what follows the papers' code and what does not: the README's method table.
"""


def _budget_table(dataset: str, methods: list[str], paper_profile: dict) -> pd.DataFrame:
    import json

    from ganad.runtime import layout

    rows = []
    for method in methods:
        path = layout.method_config(dataset, method)
        if not path.is_file():
            continue
        config, theirs = json.loads(path.read_text()), paper_profile.get(method) or {}
        cells = {
            k: f"{config[k]}" + (f" (paper profile {theirs[k]})" if k in theirs and theirs[k] != config[k] else "")
            for k in BUDGET_KEYS
            if k in config and not (k == "budget_scale" and config[k] == 1)  # named where a run scales it
        }
        rows.append(
            {
                "method": method,
                "settings (this run; the paper profile's where it differs)": ", ".join(
                    f"{k} {v}" for k, v in cells.items()
                )
                or "no training budget",
            }
        )
    return pd.DataFrame(rows)


def data_line(dataset: str, source, meta: dict) -> str:
    """One line saying what a run's dataset was: its source as params declare it (data.<name>) and the
    prepared image counts, so a kept run's page says which copy of the data made its numbers."""
    words = {
        "embedded": "the embedded MNIST subset shipped with ganad",
        "npz": f"the npz archive `{source.npz_path}`",
        "torchvision": f"torchvision's {source.torchvision or dataset} files"
        + (f" from the mirror {source.mirror}" if source.mirror else ""),
        "folder": f"the image folder `{source.root}`",
    }[source.source]
    channels = meta["channels"]
    return (
        f"- {dataset}: {meta['n_train']:,} training-pool and {meta['n_test']:,} test images "
        f"({channels} channel{'s' if channels > 1 else ''}, {meta['size']}x{meta['size']}, "
        f"{len(meta['classes'])} classes) from {words}."
    )


def _figure_links(directory: Path, root: Path) -> str:
    files = sorted(directory.glob("*.png")) if directory.is_dir() else []
    return ", ".join(f"[{f.stem}]({f.relative_to(root).as_posix()})" for f in files) or "none"


def write_results_page(
    params, out: Path, paper_profile: dict, title: str = "ganad results", studies: list[Path] | None = None
) -> str:
    """reports/results.md: per dataset and protocol the headline with uncertainty, the comparisons, the main
    model's per-class intervals, the figures; the leak audit per dataset; budgets; what differs from the papers."""
    from ganad.data.protocols import AUDIT_PROTOCOLS, split_classes
    from ganad.runtime import layout

    root = out.parent
    main = params.main_method
    metas = {dataset: layout.prepared_meta(dataset) for dataset in params.datasets}
    lines = [
        f"# {title}\n",
        f"Generated by the pipeline's report stage from this run's scores. Datasets {', '.join(params.datasets)}; "
        f"training seeds {params.seeds} (splits fixed by the split seed {params.seed}); the main model is "
        f"`{main}`. Every AUROC is a mean over the training seeds ± the standard deviation over them; "
        "'95 % CI width' is the median width of the per-seed, per-class bootstrap intervals over test "
        f"images; '{main} - method' is the mean difference over classes (and how many classes {main} wins), "
        "tested with a Wilcoxon signed-rank test over classes, p-values adjusted for the table's "
        "comparisons (Benjamini-Hochberg); 'no significant difference' at 0.05. The floors are scorers that "
        "learn nothing, on the same splits: `floor_mean_image` (distance to the mean normal training image) and "
        "`floor_intensity` (distance of the mean intensity to the normal training images'); 'vs floor' is a "
        "method's mean AUROC minus the higher floor's, and whether its 95 % interval over test images (the "
        "per-class bootstrap intervals combined) lies above it. 'budget' is each network method's training, in "
        "updates (the mean over classes), placed on the curve of the first convergence study of "
        + (
            ", ".join(
                f"[{study.as_posix()}]({Path(os.path.relpath(study, out.parent)).as_posix()}/README.md)"
                for study in studies
            )
            if studies
            else "(none given)"
        )
        + " that trained the method at the same settings on a study split of the same training images (the "
        "test images never read): the budget's AUROC gain over chance as a share of the plateau's; below "
        f"{UNDER_TRAINED * 100:.0f} % the row is marked under-trained, with the updates that reach "
        f"{UNDER_TRAINED * 100:.0f} %.\n",
        "Data:\n",
        *(data_line(d, params.data[d], meta) for d, meta in metas.items()),
        "",
    ]
    for dataset in params.datasets:
        names = metas[dataset]["classes"]
        for protocol in params.protocols:
            detail, unavailable = read_detail(dataset, protocol)
            run, configs = run_budgets(dataset, protocol, params.all_methods())
            source = params.data[dataset]
            data = data_identity(source.source, dataset, getattr(source, "npz_path", None))
            classes = split_classes(layout.splits(dataset, protocol))
            verdicts = budget_verdicts(studies, data, configs, run, classes=classes)
            budgets = {m: text for (m, _), text in verdicts.items()}
            theirs = paper_budgets(dataset, protocol, params.all_methods(), paper_profile) if paper_profile else None
            ours = {m: updates for (m, _), updates in run.items()}
            table = headline_table(dataset, protocol, detail, unavailable, main, budgets, theirs, ours)
            lines.append(f"## {dataset}, {protocol.replace('_', '-')}\n")
            lines.append(table.to_markdown(index=False) + "\n")
            lines += [f"- {method} was not run: {reason}\n" for method, reason in unavailable.items()]
            points = operating_table(detail, params.decision.alpha)
            if len(points):
                docs = Path(os.path.relpath("docs/decisions.md", out.parent)).as_posix()
                lines += [OPERATING_NOTE.format(docs=docs), points.to_markdown(index=False) + "\n"]
            lines.append(
                f"Per class: [tables/{dataset}_{protocol}.md](tables/{dataset}_{protocol}.md); every "
                f"AUROC with its interval: [metrics/classes/{dataset}_{protocol}.csv]"
                f"(metrics/classes/{dataset}_{protocol}.csv); figures: "
                f"{_figure_links(layout.figures(dataset, protocol), root)}.\n"
            )
            if main in set(detail["method"]):
                lines.append(
                    f"{main} per class, each seed's AUROC with its 95 % bootstrap interval over test images:\n"
                )
                lines.append(class_intervals(detail, main, names).to_markdown(index=False) + "\n")
        for audit, audited in AUDIT_PROTOCOLS.items():
            if audit not in params.audit_protocols:
                continue
            disjoint, _ = read_detail(dataset, audited)
            leaky, _ = read_detail(dataset, audit)
            lines.append(f"## {dataset}: the leak audit\n")
            lines.append(
                f"The same leave-one-class-out models scored on two test splits: ours, disjoint from "
                f"training ({split_leak(dataset, audited):.1%} of the test normals were trained on, "
                f"measured on the split files), and EGBAD's, whose test normals come from a second "
                f"permutation ({split_leak(dataset, audit):.1%} trained on). The papers' leave-one-"
                "class-out numbers were made under the leaky split. 'leaky - disjoint' is per seed, "
                "then mean ± std.\n"
            )
            lines.append(leak_table(dataset, disjoint, leaky).to_markdown(index=False) + "\n")
        lines.append(f"## {dataset}: budgets\n")
        lines.append(_budget_table(dataset, params.all_methods(), paper_profile).to_markdown(index=False) + "\n")
    lines.append("## What differs from the papers, and why\n")
    lines.append(DIFFERENCES)
    text = "\n".join(lines)
    write_text(out, text)
    return text
