"""train: fit one method on every class of one dataset and protocol, once per training seed."""

import click

from ganad.config.params import load_params
from ganad.data.protocols import split_classes
from ganad.engine.jobs import curves_table, for_each_job, jobs, prepare_method, train_class
from ganad.methods.base import MethodUnavailable
from ganad.runtime import layout
from ganad.runtime.score_files import mark_unavailable, write_table
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
@click.option("--method", required=True)
def main(dataset: str, protocol: str, method: str) -> None:
    """Write models/<dataset>/<protocol>/<method>/seed<s>/class<c>.safetensors for each class of the split file
    and each training seed of run.seeds.

    The method's settings come from data/config/<dataset>/<method>.json (the configure
    stage). Per-epoch losses go to reports/training/... through dvclive and, every class and
    seed in one table, to reports/curves/<dataset>_<protocol>_<method>.csv (dvc.yaml's plots);
    checkpoints in data/checkpoints/... let an interrupted run resume where it stopped, curves
    included. Jobs (class, seed) run on the executor of params.yaml (ganad.runtime.executors).
    A method that cannot run here (e.g.
    pretrained weights cannot be had) leaves UNAVAILABLE.txt with the reason instead, and later
    stages show it as not run.
    """
    params = load_params()
    params.require(dataset=dataset, protocol=protocol, method=method)
    try:
        prepare_method(dataset, method)
        classes = split_classes(layout.splits(dataset, protocol))
        infos = for_each_job(params, jobs(classes, params.seeds), train_class, dataset, protocol, method)
    except MethodUnavailable as exc:
        mark_unavailable(dataset, protocol, method, str(exc))
        write_table(layout.curves(dataset, protocol, method), curves_table([]))
        click.echo(f"{method} skipped for {dataset} {protocol}: {exc}")
        return
    write_table(layout.curves(dataset, protocol, method), curves_table(infos))
    for info in infos:
        click.echo(
            f"{method} {dataset} {protocol}: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "history")
        )


if __name__ == "__main__":
    run(main)
