"""score: anomaly scores of every test image, for one method, dataset and protocol."""

import click
import pandas as pd

from ganad import layout
from ganad.config import load_params
from ganad.pipeline import for_each_class, score_class
from ganad.protocols import split_classes
from ganad.scoretable import unavailable_reason, write_scores, write_selected


@click.command()
@click.option("--dataset", required=True)
@click.option("--protocol", required=True)
@click.option("--method", required=True)
def main(dataset: str, protocol: str, method: str) -> None:
    """Write data/scores/<dataset>/<protocol>/<method>.csv: class, index, label, anomalous, score,
    and <method>.selected.json: what the method chose from training data, per class. Classes are
    scored `run.score_workers` at a time."""
    params = load_params()
    out = layout.scores(dataset, protocol, method)
    reason = unavailable_reason(dataset, protocol, method)
    if reason is not None:
        write_scores(out, None, unavailable=reason)
        write_selected(layout.selected(dataset, protocol, method), {})
        click.echo(f"{method} {dataset} {protocol}: not run ({reason})")
        return
    classes = split_classes(layout.splits(dataset, protocol))
    results = dict(zip(classes, for_each_class(params, classes, score_class, dataset, protocol, method,
                                               workers=params.score_workers)))
    # every class is scored before anything is written: a failure leaves no partial file
    write_scores(out, pd.concat([table for table, _ in results.values()]))
    write_selected(layout.selected(dataset, protocol, method),
                   {str(cls): chosen for cls, (_, chosen) in results.items() if chosen})
    click.echo(f"{method} {dataset} {protocol}: {sum(len(t) for t, _ in results.values())} scores")


if __name__ == "__main__":
    main()
