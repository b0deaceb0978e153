"""Keep a finished run's results in the repository under a name of its own.

    python -m ganad.runtime.keep mnist_full --command "dvc exp run -S profile=mnist_full" [--note "..."]

copies what the run's stages wrote under reports/ (results.md, tables, metrics, figures, training
curves, the brain and ranking results: the outputs of the stages dvc.yaml defines for these params,
not files an earlier run with other datasets left there) with params.yaml into
reports/runs/<name>/, beside a RUN.md that gives the command that rebuilds it, the commit and the
date (and kept.json, the same for programs). The small files the report reads besides the metrics (each
method's configured settings, data/config/, and what it chose from training data, data/scores/*.selected.json)
are kept under data/ in the same layout, so that runs kept in parts can be joined into one page
(`python -m ganad.evaluation.join`). No stage writes under reports/runs, so the default `dvc repro` never
overwrites a kept run; the copies keep their relative layout, so the results page's links work inside the kept
folder.
It refuses a workspace whose pipeline is not up to date (`dvc status`), so what is kept is what
the params and code say.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click

from ganad.errors import ParamsError
from ganad.files import replace_folder

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a folder name under reports/runs
RUN_OUTPUTS = ("params.yaml", "dvc.lock", "reports")
# not kept: other kept runs, and dvclive's raw per-job logs (megabytes), which reports/curves gathers
NOT_KEPT = ("runs", "training")
KEPT_FILE = "kept.json"  # RUN.md's facts for programs: name, commit, dirty, command, notes, date


def runs_dir(root: Path = Path(".")) -> Path:
    return root / "reports" / "runs"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def stale_stages(root: Path = Path(".")) -> list[str]:
    """The stages `dvc status` finds out of date (an empty list: the results are what params and code say)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted(repo.status())


def kept_output(path: Path) -> bool:
    """Whether a stage output is kept: under reports/ (but other kept runs and the raw training logs), each
    dataset's configured method settings and each method's choices from training data."""
    if path.parts[0] == "reports":
        return path.parts[1] not in NOT_KEPT
    return path.parts[:2] == ("data", "config") or path.name.endswith(".selected.json")


def report_outputs(root: Path = Path(".")) -> list[Path]:
    """The kept outputs (`kept_output`) of the stages the pipeline defines now (paths relative to `root`)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        paths = {Path(out.def_path) for stage in repo.index.stages for out in stage.outs}
    return sorted(p for p in paths if kept_output(p))


def kept_path(path: Path) -> Path:
    """Where a kept output lies in the kept run: reports/X as X (the results page's links stay relative),
    data/X as data/X."""
    return path.relative_to("reports") if path.parts[0] == "reports" else path


def keep(
    name: str,
    command: str,
    root: Path = Path("."),
    stale: list[str] | None = None,
    notes: tuple[str, ...] = (),
    outputs: list[Path] | None = None,
) -> Path:
    """Copy the run's results to reports/runs/<name>/ (replacing a kept run of that name as a whole); `notes`
    are what a reader must know beside the numbers (a degraded copy of the data, a cut budget), listed in RUN.md."""
    if not RUN_NAME.fullmatch(name):
        raise ParamsError(f"run name {name!r} is invalid: use letters, digits, '_' and '-' (e.g. mnist_full)")
    stale = stale_stages(root) if stale is None else stale
    if stale:
        raise ParamsError(
            f"the pipeline is not up to date ({len(stale)} stages changed, e.g. {stale[0]}): "
            "run `dvc repro` (or the run's command) to the end first, then keep it"
        )
    reports = root / "reports"
    if not (reports / "results.md").is_file():
        raise ParamsError(f"'{reports / 'results.md'}' not found: run the pipeline to its report stage first")
    dest = runs_dir(root) / name
    with replace_folder(dest) as tmp:  # a failure leaves the kept run of that name as it was
        _fill(root, tmp, name, command, notes, outputs)
    return dest


def _fill(root: Path, tmp: Path, name: str, command: str, notes, outputs) -> None:
    """The kept run's files, into `tmp`."""
    for path in report_outputs(root) if outputs is None else outputs:
        source, target = root / path, tmp / kept_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.is_file():
            shutil.copy2(source, target)
    shutil.copy2(root / "params.yaml", tmp / "params.yaml")
    for page in tmp.rglob("*.md"):  # links to what is not kept (docs/, the convergence studies) now point there
        relink(page, tmp, root / "reports", runs_dir(root) / name)
    about = "".join(f"- {note}\n" for note in notes)
    if about:  # the page a reader opens first says them too, under its title
        title, _, rest = (tmp / "results.md").read_text().partition("\n")
        (tmp / "results.md").write_text(
            f"{title}\n\nKept run `{name}`, about this run (from [RUN.md](RUN.md)):\n\n" + about + rest
        )
    commit = _git(root, "rev-parse", "HEAD")
    # what the run itself rewrites (params.yaml composed by `dvc exp run`, dvc.lock, reports/) is not a change
    # to the commit; anything else tracked (code, conf/, dvc.yaml) is
    changed = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in RUN_OUTPUTS))
    dirty = " (with uncommitted changes)" if changed else ""
    record = {"name": name, "commit": commit, "dirty": bool(changed), "command": command, "notes": list(notes)}
    (tmp / KEPT_FILE).write_text(json.dumps(record | {"date": datetime.date.today().isoformat()}, indent=1) + "\n")
    (tmp / "RUN.md").write_text(
        f"# Kept run: {name}\n\n"
        f"Rebuild it from commit `{commit}`{dirty}:\n\n```bash\n{command}\n```\n\n"
        f"Kept {datetime.date.today().isoformat()} with `python -m ganad.runtime.keep {name}`. "
        "`params.yaml` is the run's; "
        "[results.md](results.md) is its results page (its links point into this folder).\n"
        + (f"\n## About this run\n\n{about}" if about else "")
    )


LINK = re.compile(r"\]\((?!https?:|mailto:|#|/)([^)#\s]+)(#[^)\s]*)?\)")  # a relative markdown link


def relink(page: Path, tmp: Path, reports: Path, dest: Path) -> None:
    """Rewrite `page`'s relative links whose target is not in the kept copy (`tmp`) to reach the target where
    it lies in the repository, from the page's final place under `dest`: the results page links to docs/ and
    to reports/convergence/ from reports/, one level above a kept run's two."""
    where = page.parent.relative_to(tmp)

    def target(match: re.Match) -> str:
        link, anchor = match.group(1), match.group(2) or ""
        if (page.parent / link).exists():
            return match.group(0)
        source = Path(os.path.normpath(reports / where / link))
        if not source.exists():
            return match.group(0)
        return f"]({os.path.relpath(source, dest / where)}{anchor})"

    text = page.read_text()
    relinked = LINK.sub(target, text)
    if relinked != text:
        page.write_text(relinked)


@click.command()
@click.argument("name")
@click.option(
    "--command",
    "command",
    required=True,
    help="The command that produced the run, as a reader should type it (shown in RUN.md).",
)
@click.option(
    "--note",
    "notes",
    multiple=True,
    help="Something a reader must know beside the numbers (repeatable; listed in RUN.md).",
)
def main(name: str, command: str, notes: tuple[str, ...]) -> None:
    """Keep the workspace's finished run under reports/runs/NAME."""
    try:
        dest = keep(name, command, notes=notes)
    except ParamsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"kept in {dest}")


if __name__ == "__main__":
    main()
