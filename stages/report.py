"""report: the papers' tables rebuilt from our metrics, per dataset and protocol, and the results page."""

from pathlib import Path

import click
import yaml

from ganad.config.params import load_params
from ganad.evaluation.tables import read_detail, write_results_page, write_tables
from ganad.runtime import layout
from ganad.runtime.score_files import read_selected
from ganad.runtime.stage import run

PAPER_PROFILE, BASE_CONFIG = Path("conf/profile/paper.yaml"), Path("conf/config.yaml")


@click.command()
def main() -> None:
    """Write reports/tables/<dataset>_<protocol>.{md,csv}: our AUROCs (mean ± std over training seeds) beside
    the papers', with the values each method chose from training data and the methods that could not run;
    and reports/results.md, the page a reader opens first."""
    params = load_params()
    for dataset in params.datasets:
        names = layout.prepared_meta(dataset)["classes"]
        for protocol in params.protocols:
            selections = {m: read_selected(layout.selected(dataset, protocol, m)) for m in params.all_methods()}
            detail, unavailable = read_detail(dataset, protocol)
            table = write_tables(
                dataset, protocol, detail, unavailable, names, params.all_methods(), layout.tables(), selections
            )
            click.echo(f"{dataset} {protocol}: {len(table)} rows")

    # the paper profile's budgets beside this run's, where the profile is there (a workspace of one's own may lack
    # conf/): each method's section as `-S profile=paper` composes it, conf/config.yaml's under the profile's
    def methods_of(path: Path) -> dict:
        return (yaml.safe_load(path.read_text()) or {}).get("methods", {}) or {} if path.is_file() else {}

    base, paper = methods_of(BASE_CONFIG), methods_of(PAPER_PROFILE)
    paper_profile = {m: {**(base.get(m) or {}), **(paper.get(m) or {})} for m in paper}
    write_results_page(params, layout.results_page(), paper_profile, studies=params.report.studies)
    click.echo(f"wrote {layout.results_page()}")


if __name__ == "__main__":
    run(main)
