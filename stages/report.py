"""report: the papers' tables rebuilt from our metrics, per dataset and protocol, and the results page."""

import click

from ganad.config.params import load_params
from ganad.evaluation.report import write_report
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
def main() -> None:
    """Write reports/tables/<dataset>_<protocol>.{md,csv}: our AUROCs (mean ± std over training seeds) beside
    the papers', with the values each method chose from training data and the methods that could not run;
    and reports/results.md, the page a reader opens first."""
    for line in write_report(load_params()):
        click.echo(line)
    click.echo(f"wrote {layout.results_page()}")


if __name__ == "__main__":
    run(main)
