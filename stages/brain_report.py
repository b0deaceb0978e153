"""brain_report: the brain study's slice-wise results table, per-grade AUROCs and ADAE Fig. 3."""

import click

from ganad.config.params import load_params
from ganad.files import read_csv, read_json
from ganad.runtime import layout
from ganad.runtime.score_files import read_scores
from ganad.runtime.stage import run
from ganad.studies.brain import DATASET, PROTOCOL
from ganad.studies.brain.report import REFERENCE, method_metrics, slice_scores, slice_size_scores, write_results


@click.command()
@click.option(
    "--bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Bootstrap resamples of patients for each AUROC's 95 % interval.",
)
def main(bootstrap: int) -> None:
    """Write reports/brain/{metrics.json, results.md, fig3_auroc.png} from every method's brain scores.

    Each method's AUROC is pooled over all test slices (every slice of the tumour
    volumes), with a 95 % bootstrap interval that resamples patients, and computed
    within each grade (HGG, LGG). A method that could not run is listed with its reason. A last row scores
    each slice by its brain voxel count alone, the reference that slice size sets.
    """
    params = load_params()
    slices = read_csv(layout.brain_slices(DATASET), "dvc repro -f -s brain_prepare")
    prepared = read_json(layout.brain_reports() / "prepare.json", "dvc repro -f -s brain_prepare")
    metrics = {}
    for method in params.methods_for(DATASET):
        scores, reason = read_scores(layout.scores(DATASET, PROTOCOL, method))
        if reason is not None:
            metrics[method] = {"unavailable": reason}
            continue
        metrics[method] = method_metrics(slice_scores(scores, slices), bootstrap, params.seed, params.decision.alpha)
        m = metrics[method]
        click.echo(f"brain {method}: AUROC {m['auroc']:.3f} [{m['auroc_ci95'][0]:.3f}, {m['auroc_ci95'][1]:.3f}]")
    metrics[REFERENCE] = method_metrics(slice_scores(slice_size_scores(slices), slices), bootstrap, params.seed)
    click.echo(f"brain {REFERENCE}: AUROC {metrics[REFERENCE]['auroc']:.3f}")
    for path in write_results(metrics, prepared, layout.brain_reports()):
        click.echo(f"wrote {path}")


if __name__ == "__main__":
    run(main)
