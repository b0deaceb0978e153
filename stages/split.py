"""split: index splits for one dataset and protocol, every class, from the params seed."""

import click
import numpy as np

from ganad.config.params import load_params
from ganad.data.protocols import check_splits, make_splits, save_splits
from ganad.data.sources import load_npz
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write data/splits/<dataset>/<protocol>.npz with train/val/test indices per class.

    Indices point into the pooled array [official train | official test] that the
    preprocess stage writes; validation is carved from training normal images only.
    """
    params = load_params()
    params.require(dataset=dataset, protocol=protocol, brain=False)
    raw = load_npz(dataset, layout.raw(dataset), f"dvc repro -f -s fetch@{dataset}")
    labels = np.concatenate([raw.y_train, raw.y_test])
    classes = params.classes_of(dataset, raw.classes)
    splits = make_splits(protocol, labels, len(raw.y_train), classes, params.seed, **params.split.model_dump())
    check_splits(splits, protocol, labels, dataset, raw.classes)
    save_splits(layout.splits(dataset, protocol), splits)
    for cls, parts in splits.items():
        sizes = ", ".join(f"{k} {len(v)}" for k, v in parts.items())
        click.echo(f"{dataset} {protocol} class {cls}: {sizes}")


if __name__ == "__main__":
    run(main)
