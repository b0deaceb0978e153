"""figures: the papers' figures for one dataset and protocol, as PNG files in reports/figures."""

import click

from ganad.config.params import load_params
from ganad.evaluation.figures import write_figures
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write ROC curves (mean per method, per class), a score histogram, reconstructions and ranked images."""
    params = load_params()
    params.require(dataset=dataset, protocol=protocol)
    for path in write_figures(params, dataset, protocol, layout.figures(dataset, protocol)):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    run(main)
