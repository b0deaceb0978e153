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
- a budget's fraction of the plateau: (AUROC at that budget - 0.5) / (plateau - 0.5), read off the curve;
- the floor on the study split (`floors.csv`: the scorers of `ganad.evaluation.floors`, which learn nothing,
  on each run's own study training and test images): a plateau that does not clear it says that no budget
  lifts the method above the floor at these settings, so a row below the floor is the method's, not the
  budget's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ganad.config.params import load_method_config
from ganad.data.protocols import anomaly_labels, load_split, split_classes
from ganad.evaluation.floors import FLOORS
from ganad.files import read_csv, read_json
from ganad.methods import method_class
from ganad.methods.common.training import NeuralMethod
from ganad.runtime import layout

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
    union of their update counts and averaged. A class whose run stopped earlier (its validation criterion
    stopped improving: converged by its own rule) is held at its last evaluation."""
    groups = [g.sort_values("updates") for _, g in curves.groupby("class", sort=True)]
    grid = np.unique(np.concatenate([g["updates"].to_numpy(dtype=float) for g in groups]))
    interpolate = {
        column: np.mean([np.interp(grid, g["updates"], g[column]) for g in groups], axis=0)
        for column in ("study_auroc", "cpu_s")
    }
    return pd.DataFrame({"updates": grid, **interpolate})


FLOORS_FILE = "floors.csv"  # beside a study's curves: the floors' study AUROCs on each run's study split
FLOOR_COLUMNS = ["method", "protocol", "class", *FLOORS]


def study_floor(floors: pd.DataFrame | None, method: str, protocol: str, classes=None) -> float:
    """The higher of the floors' study AUROCs for one method and protocol, each averaged over `classes` (all the
    floors file holds for it by default): the floor its class-mean plateau is set against. NaN where the study
    has no floors for it (a study run before floors were recorded)."""
    if floors is None:
        return float("nan")
    rows = floors[(floors["method"] == method) & (floors["protocol"] == protocol)]
    if classes is not None:
        rows = rows[rows["class"].isin(list(classes))]
    return float(rows[list(FLOORS)].mean().max()) if len(rows) else float("nan")


def summarise(curves: pd.DataFrame, tail: int = 3, floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per method, protocol and class, and per method and protocol on the class-mean curve (class 'mean'), the
    plateau summary of a curves table (columns method, protocol, class, updates, cpu_s, study_auroc); with a
    floors table, the floor on the same study split beside each plateau (`floor_auroc`, the higher floor)."""
    rows = [
        {
            "method": m,
            "protocol": p,
            "class": str(c),
            **plateau_summary(g, tail),
            "floor_auroc": study_floor(floors, m, p, [c]),
        }
        for (m, p, c), g in curves.groupby(["method", "protocol", "class"], sort=True)
    ]
    rows += [
        {
            "method": m,
            "protocol": p,
            "class": "mean",
            **plateau_summary(mean_curve(g), tail),
            "floor_auroc": study_floor(floors, m, p, g["class"].unique()),
        }
        for (m, p), g in curves.groupby(["method", "protocol"], sort=True)
    ]
    table = pd.DataFrame(rows)
    if floors is None:
        return table.drop(columns="floor_auroc")
    return table.assign(plateau_minus_floor=table["plateau_auroc"] - table["floor_auroc"])


# --- a run's budgets against a study ---------------------------------------------------------------

STUDY_FILE = "study.json"  # beside a study's curves: the data it ran on and each method's settings
# settings that say how long, where and how fast a method trains, not what it learns: a study at one budget
# speaks for every budget, thread count, score batch and optimiser implementation
RUN_ONLY_KEYS = frozenset(
    {
        "epochs",
        "min_steps",
        "min_steps_by_protocol",
        "budget_scale",
        "select",
        "threads",
        "score_batch_size",
        "search_workers",
        "pairs_per_batch",
        "channels_last",
        "adam",
        "val_images",
    }
)
UNDER_TRAINED = 0.9  # a budget below this share of the plateau's gain is marked under-trained
# a budget read above this share of the plateau's gain: the tail of the curve is not flat there, so the "plateau"
# (its last evaluations' mean) is no plateau to take a share of
ABOVE_PLATEAU = 1.2


def study_settings(config: dict) -> dict:
    """What of a method's settings (as the configure stage writes them) a study's curves depend on."""
    return {key: value for key, value in config.items() if key not in RUN_ONLY_KEYS}


def same_settings(method: str, current: dict, recorded: dict | None) -> bool:
    """Whether a study's recorded settings of `method` are the `current` ones (both as `study_settings` gives
    them). A setting one side lacks counts as the method's default there: a study recorded before a setting
    existed ran what its default does."""
    if recorded is None:
        return False
    defaults = {key: field.default for key, field in method_class(method).Config.model_fields.items()}
    return all(
        current.get(key, defaults.get(key)) == recorded.get(key, defaults.get(key)) for key in {*current, *recorded}
    )


def budget_verdict(curves: pd.DataFrame, budget: float, tail: int = 3, floor: float = float("nan")) -> dict:
    """A budget (updates) against one method and protocol's study curves (every class): the class-mean
    curve's plateau, the budget's share of the plateau's gain, the updates to 90 % of it, and a sentence; with
    the study's floor (`study_floor`), whether the plateau clears it."""
    mean = mean_curve(curves)
    summary = plateau_summary(mean, tail)
    plateau, at_90, last = summary["plateau_auroc"], summary["updates_90"], summary["last_updates"]
    fraction = fraction_of_plateau(mean, budget, plateau)
    if abs(plateau - 0.5) < AT_CHANCE:
        text = f"{budget:.0f} updates; the study's plateau is at chance ({plateau:.3f})"
    else:
        reach = f"90 % at {at_90:.0f}" if np.isfinite(at_90) else f"90 % not held within the study's {last}"
        if not np.isfinite(fraction):
            first = int(mean["updates"].min())
            text = f"under-trained: {budget:.0f} updates, before the study's first evaluation ({first}); {reach}"
        elif fraction < 0:
            side = f"on the other side of chance from the plateau ({plateau:.3f})"
            text = f"under-trained: {budget:.0f} updates, {side}; {reach}"
        elif fraction > ABOVE_PLATEAU:
            value = 0.5 + fraction * (plateau - 0.5)  # the curve where the budget reads it
            if budget >= last:
                text = (
                    f"{budget:.0f} updates; the study's curve still rose at its last evaluation ({last}: "
                    f"{value:.3f}, above the mean of its last {tail}, {plateau:.3f}): no plateau found to take a "
                    "share of"
                )
            else:
                text = (
                    f"{budget:.0f} updates, {fraction * 100:.0f} % of the plateau ({plateau:.3f}): the study's "
                    "curve peaked near here and fell back"
                )
        else:
            share = f"{budget:.0f} updates, {fraction * 100:.0f} % of the plateau ({plateau:.3f})"
            beyond = f" (the study stopped at {last})" if budget > last else ""
            text = share + beyond if fraction >= UNDER_TRAINED else f"under-trained: {share}; {reach}"
    if np.isfinite(floor) and plateau <= floor:
        text += f"; the plateau does not clear the study's floor ({floor:.3f})"
    return {"budget": budget, "plateau": plateau, "fraction": fraction, "updates_90": at_90, "text": text}


def read_study(folder) -> tuple[dict, pd.DataFrame, pd.DataFrame | None] | None:
    """A study folder's identity (study.json), curves and floors (None where it recorded none), or None where it
    has no study."""
    folder = Path(folder)
    if not (folder / STUDY_FILE).is_file() or not (folder / "curves.csv").is_file():
        return None
    rebuild = f"python benchmarks/convergence.py run --out {folder} (its command.txt)"
    floors = read_csv(folder / FLOORS_FILE, rebuild) if (folder / FLOORS_FILE).is_file() else None
    return read_json(folder / STUDY_FILE, rebuild), read_csv(folder / "curves.csv", rebuild), floors


REASON_ORDER = ("the study ran other settings", "the study ran on other data", "not in the study")


def budget_verdicts(
    studies,
    data: str,
    configs: dict[str, dict],
    budgets: dict[tuple[str, str], float],
    tail: int = 3,
    classes: list[int] | None = None,
) -> dict[tuple[str, str], str]:
    """Per (method, protocol) of a run's `budgets` (updates, the mean over its classes), a sentence placing
    it on the curve of the first of `studies` (one folder or a list of them, in order) that ran it on the same
    data (`data`, as `data_identity` gives it) at the same settings; where none did, why the first study
    cannot tell: other data, other settings, a method or protocol it did not run. With the run's `classes`, a
    study that ran fewer of them says which: its class-mean curve speaks for those alone."""
    folders = [studies] if isinstance(studies, (str, Path)) else list(studies or [])
    found = [study for study in map(read_study, folders) if study is not None]
    out = {}
    for (method, protocol), budget in budgets.items():
        reasons = []
        for meta, curves, floors in found:
            group = curves[(curves["method"] == method) & (curves["protocol"] == protocol)]
            if meta.get("data") != data:
                reasons.append("the study ran on other data")
            elif group.empty:
                reasons.append("not in the study")
            elif not same_settings(
                method, study_settings(configs.get(method, {})), meta.get("settings", {}).get(method)
            ):
                reasons.append("the study ran other settings")
            else:
                floor = study_floor(floors, method, protocol, group["class"].unique())
                text = budget_verdict(group, budget, tail, floor)["text"]
                ran = sorted({int(c) for c in group["class"].unique()})
                if classes is not None and set(classes) - set(ran):
                    shown = ", ".join(str(c) for c in ran)
                    text += f"; the study ran class{'es' if len(ran) > 1 else ''} {shown} of the run's {len(classes)}"
                out[method, protocol] = text
                break
        else:  # the nearest miss: a study that ran the method at other settings says more than one without it
            reason = min(reasons, key=REASON_ORDER.index) if reasons else "no convergence study"
            out[method, protocol] = f"{budget:.0f} updates; {reason}"
    return out


def data_identity(source: str, dataset: str, npz_path=None) -> str:
    """What a study or run trained on, comparably: 'embedded:<dataset>' for the subset shipped with ganad,
    'sha256:<hex>' for an npz archive; '' for anything else (no study speaks for it)."""
    if source == "embedded":
        return f"embedded:{dataset}"
    if source == "npz" and npz_path and Path(npz_path).is_file():
        return "sha256:" + hashlib.sha256(Path(npz_path).read_bytes()).hexdigest()
    return ""


def run_budgets(dataset: str, protocol: str, methods: list[str]) -> tuple[dict[tuple[str, str], float], dict]:
    """A run's budgets, as its train_score stage trains them: per network method, the updates on each class's
    training split (`NeuralMethod.steps`, from the configure stage's settings and the split file), averaged over
    classes; and each method's settings. Methods without a training loop have no budget."""
    splits = layout.splits(dataset, protocol)
    sizes = [len(load_split(splits, cls)["train"]) for cls in split_classes(splits)]
    budgets, configs = {}, {}
    for method in methods:
        path = layout.method_config(dataset, method)
        if not path.is_file():
            continue
        config = load_method_config(path, method)
        configs[method] = read_json(path)
        if issubclass(method_class(method), NeuralMethod):
            config = config.for_protocol(protocol)
            budgets[method, protocol] = float(np.mean([method_class(method).steps(config, n) for n in sizes]))
    return budgets, configs


# the paper profile's budget keys (conf/profile/paper.yaml): its epochs at its batch size; a key it leaves out
# is the method's default, not this run's (a run's min_steps or budget_scale is a budget of its own, not the paper's)
PAPER_BUDGET_KEYS = ("epochs", "batch_size", "min_steps", "min_steps_by_protocol", "budget_scale")


def paper_budgets(dataset: str, protocol: str, methods: list[str], paper_profile: dict) -> dict[str, float]:
    """Per network method, the updates the paper profile's budget takes on this run's training splits (the
    mean over classes), so that a run's budget reads against the paper's in one unit."""
    splits = layout.splits(dataset, protocol)
    sizes = [len(load_split(splits, cls)["train"]) for cls in split_classes(splits)]
    out = {}
    for method in methods:
        path, kind = layout.method_config(dataset, method), method_class(method)
        if not path.is_file() or not issubclass(kind, NeuralMethod):
            continue
        config = load_method_config(path, method)
        defaults = {
            key: kind.Config.model_fields[key].get_default(call_default_factory=True) for key in PAPER_BUDGET_KEYS
        }
        theirs = paper_profile.get(method) or {}
        paper = config.model_copy(update={key: theirs.get(key, defaults[key]) for key in PAPER_BUDGET_KEYS})
        out[method] = float(np.mean([kind.steps(paper.for_protocol(protocol), n) for n in sizes]))
    return out
