"""One results page for a run kept in parts.

    python -m ganad.evaluation.join cifar10_converged cifar10_converged_a cifar10_converged_b \\
        --command "dvc exp run -S profile=cifar10_converged -S 'run.methods=[...]' (per part)"

A run too long for one session runs in parts by method (`-S 'run.methods=[...]'`), each kept on its own with
`python -m ganad.runtime.keep <part>`. The join reads the kept parts (their metrics, each method's configured
settings and its choices from training data, figures, curves), and from the workspace it runs in only what
every part shares: the prepared data's class names and the split files. It writes reports/runs/<name>/ with
the report stage's own code (`ganad.evaluation.report`): one table per dataset and protocol and one results
page over every part's methods, with the leak audit and the budgets, and a RUN.md naming each part's commit
and command.

What makes parts one run is checked before anything is written:

- every setting is the same but the methods (params.yaml less run.methods, brain.methods, where the jobs ran
  and the sections of the methods a part did not run);
- no method is in two parts (the first part's main model is the joint run's; each part names one of its own
  methods as model.method, as params.yaml requires);
- the floors (scorers that learn nothing, scored by every part on its own split) agree to the last digit,
  class by class and seed by seed: the parts scored the same test images;
- the workspace's split files give each class as many test images as the parts scored.

The brain and ranking results are the offline demos' and stay on each part's page.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import click
import pandas as pd
import yaml

from ganad.config.params import parse_params
from ganad.data.protocols import load_split
from ganad.errors import ParamsError
from ganad.evaluation.floors import FLOORS
from ganad.evaluation.metrics import DETAIL_COLUMNS
from ganad.evaluation.report import write_report
from ganad.files import read_csv, read_json, replace_folder, write_json
from ganad.runtime import layout
from ganad.runtime.keep import KEPT_FILE, RUN_NAME, relink, runs_dir
from ganad.runtime.score_files import write_table
from ganad.runtime.stage import run

# settings a part may hold on its own: which methods it ran (and trained on the brain demo), its main model (one
# of them, as params.yaml requires; the joint run's is the first part's) and that model's latent size, where its
# jobs ran; what each method was configured with is checked against the joint run's (`check_configs`)
PART_KEYS = (
    ("run", "methods"),
    ("brain", "methods"),
    ("model", "method"),
    ("model", "latent_dim"),
    ("executor",),
    ("methods",),
)
# what the joint run keeps: the report's outputs, the parts' configured settings and choices, the joint params
JOINED = ("results.md", "tables", "metrics", "figures", "curves", "data/config", "data/scores", "params.yaml")


class Part:
    """One kept part: its folder, what keep recorded (kept.json), its params as written and the methods it ran."""

    def __init__(self, folder: Path):
        self.folder, self.name = folder, folder.name
        again = f"keep it again with `python -m ganad.runtime.keep {self.name}` from the workspace that ran it"
        if not (folder / KEPT_FILE).is_file():
            raise ParamsError(
                f"'{folder / KEPT_FILE}' not found: '{self.name}' is not a kept run, or was kept before parts "
                f"could be joined; {again}"
            )
        self.record = read_json(folder / KEPT_FILE, again)
        self.raw = yaml.safe_load((folder / "params.yaml").read_text()) or {}
        self.params = parse_params(copy.deepcopy(self.raw))
        self.methods = list(self.params.methods)
        self.again = again

    def metrics(self, dataset: str, protocol: str) -> tuple[dict, pd.DataFrame]:
        headline = read_json(self.folder / "metrics" / f"{dataset}_{protocol}.json", self.again)
        detail = read_csv(
            self.folder / "metrics" / "classes" / f"{dataset}_{protocol}.csv", self.again, columns=DETAIL_COLUMNS
        )
        return headline, detail


def shared_settings(raw: dict) -> dict:
    """A part's params less what a part may hold on its own (`PART_KEYS`)."""
    shared = copy.deepcopy(raw)
    for *parents, key in PART_KEYS:
        section = shared
        for parent in parents:
            section = section.get(parent) or {}
        section.pop(key, None)
    return shared


def differences(a, b, prefix: str = "") -> list[str]:
    """The dotted keys where two params trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')} ({a!r} against {b!r})"]


def check_parts(parts: list[Part], order: list[str]) -> dict[str, Part]:
    """Which part ran each method, in `order` (then the parts' order); a ParamsError where the parts are not one
    run (settings, methods)."""
    first = parts[0]
    for part in parts[1:]:
        diff = differences(shared_settings(first.raw), shared_settings(part.raw))
        if diff:
            raise ParamsError(
                f"parts '{first.name}' and '{part.name}' differ in {diff[0]}"
                + (f" and {len(diff) - 1} more settings" if len(diff) > 1 else "")
                + ": the parts of one run share every setting but the methods; run the part again with the "
                "others' settings"
            )
    owner: dict[str, Part] = {}
    for part in parts:
        for method in part.methods:
            if method in owner:
                raise ParamsError(
                    f"method {method} is in parts '{owner[method].name}' and '{part.name}': each method belongs "
                    "to one part; keep one of them without it"
                )
            owner[method] = part
    rank = {m: i for i, m in enumerate([*order, *owner])}
    return dict(sorted(owner.items(), key=lambda item: rank[item[0]]))


def table_order(conf: Path) -> list[str]:
    """The methods in the order the default run lists them (conf/config.yaml's run.methods), which the tables
    follow; empty where there is no conf/."""
    path = conf / "config.yaml"
    return list((yaml.safe_load(path.read_text()) or {}).get("run", {}).get("methods", [])) if path.is_file() else []


def joint_params(parts: list[Part], owner: dict[str, Part]) -> dict:
    """The parts' params as one run's: every method in run.methods, each with its own part's section, and the
    first part's main model."""
    raw = copy.deepcopy(parts[-1].raw)
    raw["run"]["methods"] = list(owner)
    raw["model"] = copy.deepcopy(parts[0].raw["model"])
    raw["methods"] = {**raw.get("methods", {}), **{m: part.raw["methods"][m] for m, part in owner.items()}}
    raw.pop("executor", None)
    return raw


def merge_metrics(parts: list[Part], owner: dict[str, Part], dataset: str, protocol: str, methods: list[str]):
    """One headline and one per-class table for (dataset, protocol), as the evaluate stage writes them for a run
    of `methods` (in that order, then the floors): each method's rows from its own part, the floors' and the
    run-wide keys (seeds, alpha) once, after checking that every part has the same."""
    headline: dict = {}
    details, floors = [], None
    for part in parts:
        mine, detail = part.metrics(dataset, protocol)
        for key, value in mine.items():
            if key in owner:  # a method's headline, from the part that ran it
                if owner[key] is part:
                    headline[key] = value
            elif headline.setdefault(key, value) != value:  # a floor's or the run's (seeds, alpha): all agree
                raise ParamsError(
                    f"{dataset} {protocol}: '{key}' differs between the parts ({headline[key]!r} against "
                    f"{value!r} in '{part.name}'): the parts scored other test images; run every part with the "
                    "same data and split settings"
                )
        details.append(detail[detail["method"].isin([m for m in part.methods if owner[m] is part])])
        floor = detail[detail["method"].isin(FLOORS)].sort_values(["method", "seed", "class"], ignore_index=True)
        if floors is None:
            floors = floor
        elif not floor.equals(floors):
            raise ParamsError(
                f"{dataset} {protocol}: the floors of '{part.name}' differ from '{parts[0].name}''s: the parts "
                "scored other test images; run every part with the same data and split settings"
            )
    order = ["seeds", "alpha", *methods, *FLOORS]
    headline = {key: headline[key] for key in sorted(headline, key=lambda k: order.index(k) if k in order else 99)}
    detail = pd.concat([*details, floors], ignore_index=True)
    rank = detail["method"].map({m: i for i, m in enumerate(order)})
    return headline, detail.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def check_configs(params, owner: dict[str, Part], dataset: str) -> None:
    """Each method was configured in its part as the joint run configures it (a part's main model takes
    model.latent_dim: where that is not the method's own latent size, its rows are another setting's)."""
    meta = layout.prepared_meta(dataset)
    for method, part in owner.items():
        path = part.folder / layout.method_config(dataset, method)
        if not path.is_file():
            raise ParamsError(f"'{path}' not found: {part.again}")
        theirs = read_json(path, part.again)
        ours = params.method_config(method, meta["channels"], meta.get("latent_dim")).model_dump()
        diff = differences(json.loads(json.dumps(ours)), theirs)
        if diff:
            raise ParamsError(
                f"part '{part.name}' configured {method} with other settings than the joint run's: {diff[0]}; "
                f"run the part again with them (a part's main model takes model.latent_dim: give it the "
                f"method's own, e.g. -S model.latent_dim={ours.get('latent_dim')})"
            )


def check_splits(dataset: str, protocol: str, floors: pd.DataFrame) -> None:
    """The workspace's split file gives every class as many test images as the parts scored."""
    path = layout.splits(dataset, protocol)
    for cls, n_test in floors.groupby("class")["n_test"].first().items():
        mine = len(load_split(path, int(cls))["test"])
        if mine != n_test:
            raise ParamsError(
                f"'{path}' gives class {cls} {mine} test images where the parts scored {n_test}: join in a "
                f"workspace prepared with the parts' data and split settings (`dvc repro split@{dataset}-{protocol}`)"
            )


def gather(part: Part, owner: dict[str, Part], tmp: Path, params, seen: set[str]) -> None:
    """A part's files of its own methods into the joint tree: configured settings and choices, curves, figures
    (a figure several parts drew, such as the mean ROC, is kept from each, named by its part after the first)."""
    own = [m for m in part.methods if owner[m] is part]
    for path in sorted((part.folder / "data").rglob("*.json")):
        if path.name.removesuffix(".json").removesuffix(".selected") in own:
            target = tmp / path.relative_to(part.folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    curves = [layout.curves(d, p, m) for d in params.datasets for p in params.protocols for m in own]
    figures = [layout.figures(d, p) for d in params.datasets for p in params.protocols]
    for curve in curves:
        if (part.folder / curve.relative_to("reports")).is_file():
            (tmp / curve).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(part.folder / curve.relative_to("reports"), tmp / curve)
    for folder in figures:
        for path in sorted((part.folder / folder.relative_to("reports")).glob("*.png")):
            target = tmp / folder / path.name
            if target.as_posix() in seen:
                target = target.with_name(f"{path.stem}_{part.name}.png")
            seen.add(target.as_posix())
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def join(name: str, part_names: list[str], command: str, root: Path = Path(".")) -> Path:
    """Write reports/runs/<name>/, the run whose methods the kept parts `part_names` ran, joined."""
    root = root.resolve()
    if not RUN_NAME.fullmatch(name):
        raise ParamsError(f"run name {name!r} is invalid: use letters, digits, '_' and '-' (e.g. cifar10_converged)")
    if len(part_names) < 2 or len(set(part_names)) < len(part_names) or name in part_names:
        raise ParamsError(f"give two or more different kept parts, none named {name!r}, to join (got {part_names})")
    missing = [p for p in part_names if not (runs_dir(root) / p).is_dir()]
    if missing:
        raise ParamsError(
            f"'{runs_dir(root) / missing[0]}' not found: keep each part first (python -m ganad.runtime.keep)"
        )
    parts = [Part(runs_dir(root) / p) for p in part_names]
    owner = check_parts(parts, table_order(root / "conf"))
    raw = joint_params(parts, owner)
    params = parse_params(copy.deepcopy(raw))
    protocols = [*params.protocols, *params.audit_protocols]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        (tmp / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        # the workspace's, read only: the prepared data, the splits, the studies, and each npz archive (the
        # budget column compares a study's data with the run's by the archive's digest)
        archives = [getattr(params.data[d], "npz_path", None) for d in params.datasets]
        for shared in ("data/prepared", "data/splits", "reports/convergence", *filter(None, archives)):
            if not Path(shared).is_absolute() and (root / shared).exists():
                (tmp / shared).parent.mkdir(parents=True, exist_ok=True)
                (tmp / shared).symlink_to(root / shared)
        for dataset in params.datasets:  # the parts' own checks first, then against the workspace
            methods = params.methods_for(dataset)
            merged = {p: merge_metrics(parts, owner, dataset, p, methods) for p in protocols}
            with contextlib.chdir(tmp):
                check_configs(params, owner, dataset)
                for protocol, (headline, detail) in merged.items():
                    check_splits(dataset, protocol, detail[detail["method"].isin(FLOORS)])
                    write_table(layout.class_metrics(dataset, protocol), detail)
                    write_json(layout.metrics(dataset, protocol), headline)
        seen: set[str] = set()
        for part in parts:
            gather(part, owner, tmp, params, seen)
        with contextlib.chdir(tmp):
            write_report(params, conf=root / "conf", title=f"ganad results: {name}, joined from {len(parts)} parts")
        dest = runs_dir(root) / name
        with replace_folder(dest) as out:
            for item in JOINED:
                source = tmp / item if item.startswith(("params.yaml", "data/")) else tmp / "reports" / item
                if source.is_dir():
                    shutil.copytree(source, out / item)
                elif source.is_file():
                    shutil.copy2(source, out / item)
            for page in out.rglob("*.md"):
                relink(page, out, root / "reports", dest)
            write_about(out, name, parts, owner, command)
    return dest


def write_about(out: Path, name: str, parts: list[Part], owner: dict[str, Part], command: str) -> None:
    """RUN.md and kept.json of the joint run, and the parts named under the results page's title."""

    def row(p: Part) -> str:
        dirty = " (with uncommitted changes)" if p.record.get("dirty") else ""
        methods = ", ".join(m for m in p.methods if owner[m] is p)
        cells = [f"[{p.name}](../{p.name}/RUN.md)", f"`{p.record['commit']}`{dirty}", methods]
        return "| " + " | ".join([*cells, f"`{p.record['command']}`", p.record.get("date", "")]) + " |"

    rows = [row(p) for p in parts]
    table = "| part | commit | methods | command | kept |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    # a note every part gives is the run's; another is its part's, and says which
    every = set.intersection(*(set(p.record.get("notes", [])) for p in parts))
    notes = list(dict.fromkeys(n if n in every else f"{p.name}: {n}" for p in parts for n in p.record.get("notes", [])))
    about = "".join(f"- {note}\n" for note in notes)
    title, _, rest = (out / "results.md").read_text().partition("\n")
    (out / "results.md").write_text(
        f"{title}\n\nJoined run `{name}`: {len(parts)} parts, each kept on its own and run at its own commit "
        f"([RUN.md](RUN.md)):\n\n{table}" + (f"\nAbout this run:\n\n{about}" if about else "") + rest
    )
    (out / "RUN.md").write_text(
        f"# Joined run: {name}\n\nThe parts below ran the methods of one run ({command}), each in a workspace of "
        "its own; their settings agree but for the methods, and their floors agree to the last digit (the same "
        f"test images). Joined {datetime.date.today().isoformat()} with "
        f"`python -m ganad.evaluation.join {name} {' '.join(p.name for p in parts)}`.\n\n{table}"
        "\nThe brain and ranking results are the offline demos', on each part's own page.\n"
        + (f"\n## About this run\n\n{about}" if about else "")
    )
    record = {
        "name": name,
        "command": command,
        "parts": [{**p.record, "methods": [m for m in p.methods if owner[m] is p]} for p in parts],
        "notes": notes,
        "date": datetime.date.today().isoformat(),
    }
    (out / KEPT_FILE).write_text(json.dumps(record, indent=1) + "\n")


@click.command()
@click.argument("name")
@click.argument("parts", nargs=-1, required=True)
@click.option("--command", default="", help="How the parts were run, as a reader should read it (shown in RUN.md).")
def main(name: str, parts: tuple[str, ...], command: str) -> None:
    """Join the kept runs PARTS (reports/runs/<part>) into reports/runs/NAME."""
    click.echo(f"joined in {join(name, list(parts), command or f'the parts of {name}')}")


if __name__ == "__main__":
    run(main)  # a refusal is one line and exit status 2, as for every stage
