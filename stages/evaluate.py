"""evaluate: AUROC and average precision per class and seed for every scored method of one dataset and protocol."""

import click
import pandas as pd

from ganad.config.params import load_params
from ganad.evaluation.floors import FLOORS, floor_tables
from ganad.evaluation.metrics import DETAIL_COLUMNS, class_metrics_of, headline
from ganad.files import write_json
from ganad.runtime import layout
from ganad.runtime.executors import cores
from ganad.runtime.score_files import read_scores, write_table
from ganad.runtime.stage import run


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write the headline, reports/metrics/<dataset>_<protocol>.json (DVC metrics):
    {seeds: n, alpha: decision.alpha, <method>: {auroc: mean over seeds of the class-mean AUROC, auroc_std: its std
    over seeds, far_at_alpha, detection_at_alpha, detection_at_5pct_far: the operating points' class means}}, a
    method that could not run as {<method>: {unavailable: reason}}; and the detail behind it,
    reports/metrics/classes/<dataset>_<protocol>.csv: AUROC with its 95 % bootstrap interval over test
    images, AP and the operating points (flagged at p-value <= alpha: the false-alarm rate on the test normals
    and the detection rate; the detection rate at a 5 % false-alarm rate), per method, seed and class. The
    floors (scorers that learn nothing, ganad.evaluation.floors) get the same entries, under the run's first
    training seed.
    """
    params = load_params()
    params.require(dataset=dataset, protocol=protocol)
    alpha = params.decision.alpha
    headlines, tables = {"seeds": len(params.seeds), "alpha": alpha}, {}
    for method in params.methods_for(dataset):
        table, reason = read_scores(layout.scores(dataset, protocol, method))
        if reason is None:
            tables[method] = table
        else:
            headlines[method] = {"unavailable": reason}
            click.echo(f"{dataset} {protocol} {method}: not run ({reason})")
    # the floors: scorers that learn nothing, on the same splits (ganad.evaluation.floors)
    tables |= floor_tables(dataset, protocol, seed=params.seeds[0])
    # the bootstraps are most of this stage's time: one process per core, unless the executor is serial
    details = class_metrics_of(tables, 1 if params.executor.kind == "serial" else cores(), alpha)
    for method, detail in details.items():
        headlines[method] = headline(detail)[method]
        click.echo(
            f"{dataset} {protocol} {method}: mean AUROC {headlines[method]['auroc']:.3f} "
            f"± {headlines[method]['auroc_std']:.3f} over {detail['seed'].nunique()} seeds"
        )
    order = ["seeds", "alpha", *params.methods_for(dataset), *FLOORS]  # the run's method order, then the floors
    headlines = {key: headlines[key] for key in order}
    details = list(details.values())
    write_table(
        layout.class_metrics(dataset, protocol),
        pd.concat(details, ignore_index=True).round(4) if details else pd.DataFrame(columns=DETAIL_COLUMNS),
    )
    write_json(layout.metrics(dataset, protocol), headlines)


if __name__ == "__main__":
    run(main)
