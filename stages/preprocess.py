"""preprocess: pool, resize to 32x32 and store one dataset as a memory-mappable uint8 array."""

import click

from ganad.config.params import load_params
from ganad.data.images import prepare
from ganad.data.sources import load_npz
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
def main(dataset: str) -> None:
    """Write data/prepared/<dataset>/{images.npy, labels.npy, meta.json}.

    Images are pooled as [official train | official test], NCHW, 32x32, uint8;
    loaders map them to [-1, 1] when they read a batch.
    """
    load_params().require(dataset=dataset, brain=False)
    meta = prepare(load_npz(dataset, layout.raw(dataset), f"dvc repro -f -s fetch@{dataset}"), layout.prepared(dataset))
    click.echo(f"{dataset}: {meta['n_train'] + meta['n_test']} images, {meta['channels']} channel(s), 32x32")


if __name__ == "__main__":
    run(main)
