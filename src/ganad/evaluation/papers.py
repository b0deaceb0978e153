"""The AUROCs the two papers report, keyed by our method names, for side-by-side tables.

The numbers are data, not code: `papers.yaml` beside this file holds them as transcribed
(ADAE Tables 1-2 and Section 5, ADGAN Table 1), and tests/test_paper.py checks them against
the averages the papers print.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_PAPERS = yaml.safe_load((Path(__file__).with_name("papers.yaml")).read_text())

PAPER_AUROC: dict[tuple[str, str], dict[str, list[float]]] = {
    (dataset, protocol): rows for dataset, tables in _PAPERS["auroc"].items() for protocol, rows in tables.items()
}
PAPER_SOURCE: dict[str, str] = _PAPERS["sources"]
TABLE_ORDER: dict[str, list[str]] = _PAPERS["table_order"]  # row order; our methods a paper lacks follow these
BRAIN_AUROC: dict[str, float] = _PAPERS["brain"]  # ADAE Section 5, slice-wise, healthy HCP to BraTS 2017


def paper_rows(dataset: str, protocol: str) -> dict[str, list[float]]:
    return PAPER_AUROC.get((dataset, protocol), {})
