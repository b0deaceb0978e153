"""Score tables on disk: one CSV row per test image, written atomically.

A method that could not run here has no models but an UNAVAILABLE.txt with the
reason; its score file holds a header and a `# unavailable:` line instead of rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ganad.data.protocols import AUDIT_PROTOCOLS
from ganad.errors import DataError
from ganad.files import atomic_write, read_csv, read_json, write_text
from ganad.runtime import layout

# p_value: the conformal p-value of the score among the model's normal validation scores (ganad.engine.conformal)
COLUMNS = ["class", "seed", "index", "label", "anomalous", "score", "p_value"]


def mark_unavailable(dataset: str, protocol: str, method_name: str, reason: str) -> None:
    """The method did not run: its model folder and its training-curve folder (both stage outputs) hold the
    reason instead."""
    for path in (
        layout.unavailable(dataset, protocol, method_name),
        layout.training_logs(dataset, protocol, method_name) / "UNAVAILABLE.txt",
    ):
        write_text(path, reason.strip() + "\n")


def unavailable_reason(dataset: str, protocol: str, method_name: str) -> str | None:
    path = layout.unavailable(dataset, protocol, method_name)
    return path.read_text().strip() if path.is_file() else None


def _replace(path: Path, write) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        write(f)


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


def rebuild_scores(path: Path) -> str:
    """The command that writes the score file data/scores/<dataset>/<protocol>/<method>.csv again."""
    path = Path(path)
    dataset, protocol, method = path.parent.parent.name, path.parent.name, path.name.split(".")[0]
    if protocol in AUDIT_PROTOCOLS:
        return f"dvc repro -f -s leak_score@{dataset}-{protocol}-{method}"
    prefix = "brain_" if dataset == "brain" else ""
    return f"dvc repro -f -s {prefix}train_score@{dataset}-{protocol}-{method}"


def read_scores(path: Path, rebuild: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """The score table and, for a method that could not run, the reason. A table that is cut, of other
    columns, or with a score that is not a finite number stops naming the file and `rebuild`."""
    path = Path(path)
    rebuild = rebuild or rebuild_scores(path)
    table = read_csv(path, rebuild, COLUMNS, comment="#")
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    reason = first.split(":", 1)[1].strip() if first.startswith("# unavailable:") else None
    if reason is None:
        for column in COLUMNS:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                value = table[column].iloc[row]
                value = value.item() if isinstance(value, np.generic) else value
                raise DataError(
                    f"'{path}': column '{column}' holds {value!r} in row {row + 2}, not a finite "
                    f"number ({int(bad.sum())} such row(s)); rebuild it with `{rebuild}`"
                )
    return table, reason


def write_selected(path: Path, selected: dict) -> None:
    _replace(Path(path), lambda f: f.write(json.dumps(selected, indent=1, default=str) + "\n"))


def read_selected(path: Path) -> dict:
    return read_json(path, rebuild_scores(path)) if Path(path).is_file() else {}
