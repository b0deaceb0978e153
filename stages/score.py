"""score: anomaly scores of every test image of one split, for one method and dataset, by models trained
already: the leak audit scores its leaky split with the models of the protocol it audits (train_score
trains and scores the protocols themselves)."""

import click

from ganad.config.params import load_params
from ganad.engine.jobs import score_all
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
@click.option("--method", required=True)
def main(dataset: str, protocol: str, method: str) -> None:
    """Write data/scores/<dataset>/<protocol>/<method>.csv: class, seed, index, label, anomalous, score,
    and <method>.selected.json: what the method chose from training data, per seed and class. Jobs
    (class, seed) run on the executor of params.yaml. An audit protocol (the leaky split) is
    scored by the models of the protocol it audits."""
    params = load_params()
    params.require(dataset=dataset, protocol=protocol, method=method)
    for line in score_all(params, dataset, protocol, method):
        click.echo(line)


if __name__ == "__main__":
    run(main)
