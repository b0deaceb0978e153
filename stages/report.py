"""report: the papers' tables rebuilt from our metrics, per dataset and protocol."""

import click

from ganad import layout
from ganad.config import load_params
from ganad.reporting import write_tables


@click.command()
def main() -> None:
    """Write reports/tables/<dataset>_<protocol>.{md,csv}: our AUROCs beside the papers'."""
    params = load_params()
    for dataset in params.datasets:
        for protocol in params.protocols:
            table = write_tables(dataset, protocol, layout.metrics(dataset, protocol), params.classes,
                                 layout.REPORTS / "tables")
            click.echo(f"{dataset} {protocol}: {len(table)} rows")


if __name__ == "__main__":
    main()
