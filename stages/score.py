"""score: anomaly scores of every test image, for one method, dataset and protocol, by each seed's model."""

import click
import pandas as pd

from ganad.config.params import load_params
from ganad.data.protocols import split_classes, trained_under
from ganad.engine.jobs import for_each_job, jobs, score_class
from ganad.runtime import layout
from ganad.runtime.score_files import unavailable_reason, write_scores, write_selected
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
    out = layout.scores(dataset, protocol, method)
    reason = unavailable_reason(dataset, trained_under(protocol), method)
    if reason is not None:
        write_scores(out, None, unavailable=reason)
        write_selected(layout.selected(dataset, protocol, method), {})
        click.echo(f"{method} {dataset} {protocol}: not run ({reason})")
        return
    classes = split_classes(layout.splits(dataset, protocol))
    keys = jobs(classes, params.seeds)
    results = dict(zip(keys, for_each_job(params, keys, score_class, dataset, protocol, method, scoring=True)))
    # every job is scored before anything is written: a failure leaves no partial file
    write_scores(out, pd.concat([table for table, _ in results.values()]))
    chosen = {}
    for (cls, seed), (_, selected) in results.items():
        if selected:
            chosen.setdefault(f"seed {seed}", {})[str(cls)] = selected
    write_selected(layout.selected(dataset, protocol, method), chosen)
    click.echo(f"{method} {dataset} {protocol}: {sum(len(t) for t, _ in results.values())} scores")


if __name__ == "__main__":
    run(main)
