"""evaluate: AUROC and average precision per class and seed for every scored method of one dataset and protocol."""

import dataclasses
import json

import click
import pandas as pd

from ganad import layout
from ganad.config import load_params
from ganad.executors import map_jobs
from ganad.metrics import DETAIL_COLUMNS, class_metrics, headline
from ganad.scoretable import read_scores, write_table
from ganad.cli import run


def method_detail(params, dataset: str, protocol: str, method: str) -> pd.DataFrame | str:
    """One method's per-(seed, class) metrics with their bootstrap intervals, or why it did not run."""
    table, reason = read_scores(layout.scores(dataset, protocol, method))
    return reason if reason is not None else class_metrics(table, method)


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
def main(dataset: str, protocol: str) -> None:
    """Write the headline, reports/metrics/<dataset>_<protocol>.json (DVC metrics):
    {seeds: n, <method>: {auroc: mean over seeds of the class-mean AUROC, auroc_std: its std over seeds}},
    a method that could not run as {<method>: {unavailable: reason}}; and the detail behind it,
    reports/metrics/classes/<dataset>_<protocol>.csv: AUROC with its 95 % bootstrap interval over test
    images, and AP, per method, seed and class. The methods' bootstraps run executor.score_jobs at a time
    in a process pool here (serial if the executor is): they are seconds each, not worth a cluster job.
    """
    params = load_params()
    pool = dataclasses.replace(params.executor, kind="serial" if params.executor.kind == "serial" else "local")
    methods = params.methods_for(dataset)
    results = map_jobs(pool, method_detail, params, (dataset, protocol), methods, jobs=pool.score_jobs, device="cpu")
    headlines, details = {"seeds": len(params.seeds)}, []
    for method, detail in zip(methods, results):
        if isinstance(detail, str):
            headlines[method] = {"unavailable": detail}
            click.echo(f"{dataset} {protocol} {method}: not run ({detail})")
            continue
        details.append(detail)
        headlines[method] = headline(detail)[method]
        click.echo(f"{dataset} {protocol} {method}: mean AUROC {headlines[method]['auroc']:.3f} "
                   f"± {headlines[method]['auroc_std']:.3f} over {detail['seed'].nunique()} seeds")
    write_table(layout.class_metrics(dataset, protocol),
                pd.concat(details, ignore_index=True).round(4) if details else pd.DataFrame(columns=DETAIL_COLUMNS))
    out = layout.metrics(dataset, protocol)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(headlines, indent=2) + "\n")


if __name__ == "__main__":
    run(main)
