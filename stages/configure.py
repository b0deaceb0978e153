"""configure: check every method's params and write each one's resolved Config, per dataset."""

import json

import click

from ganad.config.params import load_params
from ganad.data.protocols import BRAIN_DATASET
from ganad.files import write_text
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True, help="Dataset name from run.datasets.")
def main(dataset: str) -> None:
    """Write data/config/<dataset>/<method>.json for every method in run.methods.

    Each file is the method's Config with every default filled in, the main model's
    latent size taken from model.latent_dim and `auto` sizes resolved for the dataset (its channel count, or
    the size its prepared meta.json names).
    With executor.max_hours set, it first prices the dataset's training and scoring on this machine
    (`ganad.engine.price`) and stops, before anything trains, a run whose estimate exceeds it.
    A method's train_score stage depends on its file alone, so a params change
    retrains only the methods whose resolved Config it changes.
    """
    params = load_params()
    params.require(dataset=dataset)
    meta = layout.prepared_meta(dataset)  # channels, and the latent size `auto` means there (brain: 128)
    configs = {
        name: params.method_config(name, meta["channels"], meta.get("latent_dim")) for name in params.all_methods()
    }  # all checked first
    for name, config in configs.items():
        params.check_selection(name, config, dataset)
    if params.executor.max_hours is not None and dataset != BRAIN_DATASET:
        # what the run costs here, measured on a few steps: a run that cannot finish stops before it trains
        from ganad.engine.price import check_time_limit, estimate, markdown  # torch: only when pricing

        table = estimate(params, dataset)
        click.echo(markdown(table))
        check_time_limit(params, dataset, table)
    for name, config in configs.items():
        path = layout.method_config(dataset, name)
        text = json.dumps(config.model_dump(), indent=1, sort_keys=True) + "\n"
        if not path.is_file() or path.read_bytes() != text.encode():
            write_text(path, text)
        click.echo(f"{dataset} {name}: {path}")


if __name__ == "__main__":
    run(main)
