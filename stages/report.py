"""report: the papers' tables rebuilt from our metrics, per dataset and protocol."""

import click

from ganad import layout
from ganad.config import load_params
from ganad.reporting import write_tables
from ganad.scoretable import read_selected


@click.command()
def main() -> None:
    """Write reports/tables/<dataset>_<protocol>.{md,csv}: our AUROCs beside the papers',
    with the values each method chose from training data and the methods that could not run."""
    params = load_params()
    for dataset in params.datasets:
        for protocol in params.protocols:
            selections = {m: read_selected(layout.selected(dataset, protocol, m)) for m in params.all_methods()}
            names = layout.prepared_meta(dataset)["classes"]
            table = write_tables(dataset, protocol, layout.metrics(dataset, protocol), names, layout.tables(),
                                 selections)
            click.echo(f"{dataset} {protocol}: {len(table)} rows")


if __name__ == "__main__":
    main()
