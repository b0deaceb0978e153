"""evaluate: AUROC and average precision per class for every scored method of one dataset and protocol."""

import json

import click
import pandas as pd

from ganad import layout
from ganad.config import load_params
from ganad.metrics import class_metrics


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write reports/metrics/<dataset>_<protocol>.json: {method: {auroc: {class: v, mean}, ap: {...}}}."""
    params = load_params()
    results = {}
    for method in params.all_methods():
        path = layout.scores(dataset, protocol, method)
        results[method] = class_metrics(pd.read_csv(path))
        click.echo(f"{dataset} {protocol} {method}: mean AUROC {results[method]['auroc']['mean']:.3f}")
    out = layout.metrics(dataset, protocol)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
