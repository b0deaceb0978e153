"""score: anomaly scores of every test image, for one method, dataset and protocol."""

import click
import pandas as pd

from ganad import layout
from ganad.config import load_params
from ganad.pipeline import score_class


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
@click.option("--method", required=True)
def main(dataset: str, protocol: str, method: str) -> None:
    """Write data/scores/<dataset>/<protocol>/<method>.csv: class, index, label, anomalous, score."""
    params = load_params()
    table = pd.concat([score_class(params, dataset, protocol, method, cls) for cls in params.classes])
    out = layout.scores(dataset, protocol, method)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    click.echo(f"{method} {dataset} {protocol}: {len(table)} scores")


if __name__ == "__main__":
    main()
