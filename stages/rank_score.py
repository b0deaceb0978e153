"""rank_score: rank one collection of images (`rank.collections.<name>`) by the ranking model's score."""

import click

from ganad.config.params import load_params
from ganad.evaluation.figures import ranked_grid
from ganad.runtime import layout
from ganad.runtime.stage import run
from ganad.studies.ranking import (
    collection_folder,
    extremes,
    load_calibration,
    load_model,
    publish,
    rank_collection,
    rank_params,
)


@click.command()
@click.option("--collection", required=True, help="A name from rank.collections.")
def main(collection: str) -> None:
    """Write reports/ranking/<collection>/: scores.csv (path, score, rank, p_value, flagged, and label for a
    classed folder; sorted by score descending, then path; rank 1 is the most anomalous; p_value from the
    model's scores of the normal folder's validation slice, flagged at p_value <= decision.alpha), ranked.png
    (the rank.grid_count most and least anomalous images, as ADGAN Figs. 4-6, flagged ones framed in red) and
    metrics.json (image count, alpha, the score threshold and the flagged count; for a classed folder holding
    rank.normal_label and other labels, the AUROC of normal against the rest). Files that cannot be decoded
    are skipped with a warning that lists them.
    The three files are replaced together, only once all are written.
    """
    params = load_params()
    rank = rank_params(params)
    collection_folder(rank, collection)  # a name not in rank.collections stops before the model loads
    ranking = rank_collection(params, rank, collection, load_model(params, rank), load_calibration(rank))
    most, least = extremes(ranking, rank.grid_count)
    title = f"{rank.method}: {collection} ({len(ranking.table)} images), most anomalous above, least below"
    publish(ranking, lambda path: ranked_grid(most, least, path, title))
    auroc = ranking.metrics.get("auroc")
    click.echo(
        f"{collection}: {len(ranking.table)} images ranked into {layout.ranking_dir(collection)}"
        + (f", AUROC {auroc:.3f} ({rank.normal_label} against the rest)" if auroc is not None else "")
        + f"; {ranking.metrics['flagged']} flagged at p <= {ranking.metrics['alpha']:g}"
        + (f"; {ranking.metrics['note']}" if "note" in ranking.metrics else "")
    )


if __name__ == "__main__":
    run(main)
