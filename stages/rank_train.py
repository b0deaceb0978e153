"""rank_train: fit the ranking method on the folder of normal images (`rank.normal`)."""

import click

from ganad.config.params import load_params
from ganad.runtime.stage import run
from ganad.studies.ranking import check_collections, rank_params, train


@click.command()
def main() -> None:
    """Write models/ranking/<rank.method>.safetensors, trained on the images of `rank.normal`.

    The folder is flat (images directly inside) or classed (subfolders, whose names are
    ignored here). A seeded `rank.val_fraction` of it is held out as normal validation data
    for the method's model selection. The method's settings are `methods.<rank.method>`.
    Per-epoch curves go to reports/training/ranking/<method> through dvclive; a checkpoint
    in data/checkpoints/ranking/ lets an interrupted run resume. Every collection of
    `rank.collections` is checked first (it exists, reads, fills the grid), so a bad
    collection stops this stage before the training rather than the scoring after it.
    """
    params = load_params()
    rank = rank_params(params)
    check_collections(rank)
    info = train(params, rank)
    click.echo("ranking model: " + ", ".join(f"{k} {v}" for k, v in info.items()))


if __name__ == "__main__":
    run(main)
