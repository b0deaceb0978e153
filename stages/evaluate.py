"""evaluate: AUROC and average precision per class for every scored method of one dataset and protocol."""

import json

import click

from ganad import layout
from ganad.config import load_params
from ganad.metrics import class_metrics
from ganad.scoretable import read_scores


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write reports/metrics/<dataset>_<protocol>.json: {method: {auroc: {class: v, mean}, ap: {...}}}.

    A method that could not run here appears as {method: {unavailable: reason}}.
    """
    params = load_params()
    results = {}
    for method in params.methods_for(dataset):
        table, reason = read_scores(layout.scores(dataset, protocol, method))
        if reason is not None:
            results[method] = {"unavailable": reason}
            click.echo(f"{dataset} {protocol} {method}: not run ({reason})")
            continue
        results[method] = class_metrics(table)
        click.echo(f"{dataset} {protocol} {method}: mean AUROC {results[method]['auroc']['mean']:.3f}")
    out = layout.metrics(dataset, protocol)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
