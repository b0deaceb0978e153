"""The report stage's work: the papers' tables rebuilt from a run's metrics, per dataset and protocol, and the
results page. stages/report.py runs it on the workspace; `ganad.evaluation.join` runs it on a run kept in parts.

Every path is the workspace layout's (`ganad.runtime.layout`), relative to the working directory.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ganad.evaluation.tables import read_detail, write_results_page, write_tables
from ganad.runtime import layout
from ganad.runtime.score_files import read_selected

PAPER_PROFILE, BASE_CONFIG = Path("profile/paper.yaml"), Path("config.yaml")


def paper_profile(conf: Path) -> dict:
    """The paper profile's settings per method, as `-S profile=paper` composes them (conf/config.yaml's under
    the profile's), for the budgets beside this run's; empty where `conf` is not there (a workspace of one's
    own may lack conf/)."""

    def methods_of(path: Path) -> dict:
        return (yaml.safe_load(path.read_text()) or {}).get("methods", {}) or {} if path.is_file() else {}

    base, paper = methods_of(conf / BASE_CONFIG), methods_of(conf / PAPER_PROFILE)
    return {m: {**(base.get(m) or {}), **(paper.get(m) or {})} for m in paper}


def write_report(params, conf: Path = Path("conf"), title: str = "ganad results") -> list[str]:
    """reports/tables/<dataset>_<protocol>.{md,csv}: our AUROCs (mean ± std over training seeds) beside the
    papers', with the values each method chose from training data and the methods that could not run; and
    reports/results.md, the page a reader opens first. Returns one line per table written."""
    written = []
    for dataset in params.datasets:
        names = layout.prepared_meta(dataset)["classes"]
        for protocol in params.protocols:
            selections = {m: read_selected(layout.selected(dataset, protocol, m)) for m in params.all_methods()}
            detail, unavailable = read_detail(dataset, protocol)
            table = write_tables(
                dataset, protocol, detail, unavailable, names, params.all_methods(), layout.tables(), selections
            )
            written.append(f"{dataset} {protocol}: {len(table)} rows")
    write_results_page(params, layout.results_page(), paper_profile(conf), title, studies=params.report.studies)
    return written
