"""Score tables on disk: one CSV row per test image, written atomically.

A method that could not run here has no models but an UNAVAILABLE.txt with the
reason; its score file holds a header and a `# unavailable:` line instead of rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ganad.errors import MissingInput
from ganad.runtime import layout

COLUMNS = ["class", "seed", "index", "label", "anomalous", "score"]


def mark_unavailable(dataset: str, protocol: str, method_name: str, reason: str) -> None:
    """The method did not run: its model folder and its training-curve folder (both stage outputs) hold the
    reason instead."""
    for path in (
        layout.unavailable(dataset, protocol, method_name),
        layout.training_logs(dataset, protocol, method_name) / "UNAVAILABLE.txt",
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason.strip() + "\n")


def unavailable_reason(dataset: str, protocol: str, method_name: str) -> str | None:
    path = layout.unavailable(dataset, protocol, method_name)
    return path.read_text().strip() if path.is_file() else None


def _replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        write(f)
    os.replace(tmp, path)


def write_table(path: Path, table: pd.DataFrame) -> None:
    """Any table as CSV, atomically."""
    _replace(Path(path), lambda f: table.to_csv(f, index=False))


def write_scores(path: Path, table: pd.DataFrame | None, unavailable: str | None = None) -> None:
    """Scores as CSV, atomically; an unavailable method gets a header and a `# unavailable:` line."""

    def write(f):
        if unavailable is not None:
            f.write(f"# unavailable: {' '.join(unavailable.split())}\n")
        (table if unavailable is None else pd.DataFrame(columns=COLUMNS)).to_csv(f, index=False)

    _replace(Path(path), write)


def read_scores(path: Path) -> tuple[pd.DataFrame, str | None]:
    """The score table and, for a method that could not run, the reason."""
    if not Path(path).is_file():
        raise MissingInput(f"'{path}' not found; run `dvc repro` (the score stage writes it)")
    with open(path) as f:
        first = f.readline()
    reason = first.split(":", 1)[1].strip() if first.startswith("# unavailable:") else None
    return pd.read_csv(path, comment="#"), reason


def write_selected(path: Path, selected: dict) -> None:
    _replace(Path(path), lambda f: f.write(json.dumps(selected, indent=1, default=str) + "\n"))


def read_selected(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}
