"""train_score: fit one method on every class of one dataset and protocol, once per training seed, then score
the protocol's test images with each model.

One stage, not two: a stage's start (Python, torch's import, DVC's bookkeeping) costs about 5 s, as much as
scoring a class-set of embedded MNIST, and training and scoring always run together anyway (the scores depend
on the models alone). stages/score.py scores again without training: the leak audit's split.
"""

import click

from ganad.config.params import load_params
from ganad.engine.jobs import score_all, train_all
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
@click.option("--method", required=True)
def main(dataset: str, protocol: str, method: str) -> None:
    """Write models/<dataset>/<protocol>/<method>/seed<s>/class<c>.safetensors for each class of the split file
    and each training seed of run.seeds, then data/scores/<dataset>/<protocol>/<method>.csv (class, seed, index,
    label, anomalous, score) and <method>.selected.json (what the method chose from training data).

    The method's settings come from data/config/<dataset>/<method>.json (the configure stage). Per-epoch losses
    go to reports/training/... through dvclive and, every class and seed in one table, to
    reports/curves/<dataset>_<protocol>_<method>.csv (dvc.yaml's plots); checkpoints in data/checkpoints/... let
    an interrupted run resume where it stopped, curves included. Jobs (class, seed) run on the executor of
    params.yaml (ganad.runtime.executors). A method that cannot run here (e.g. pretrained weights cannot be had)
    leaves UNAVAILABLE.txt with the reason and a score file that says so; later stages show it as not run.
    """
    params = load_params()
    params.require(dataset=dataset, protocol=protocol, method=method)
    for line in train_all(params, dataset, protocol, method) + score_all(params, dataset, protocol, method):
        click.echo(line)


if __name__ == "__main__":
    run(main)
