"""rank_demo: the offline ranking demo's image folders, drawn from the embedded MNIST subset."""

import click

from ganad.demos.ranking import NORMAL_DIGIT, write_demo
from ganad.runtime import layout
from ganad.runtime.stage import run


@click.command()
def main() -> None:
    """Write data/demo/rank/: normal/ (training images of one digit, a flat folder), mixed/<digit>/
    (a classed collection: test images of every digit) and flat/ (other test images of every digit,
    shuffled, with no labels); see ganad.demos.ranking.
    """
    out = layout.ranking_demo()
    counts = write_demo(out)
    click.echo(
        f"wrote {out}: normal/ {counts['normal']} images of digit {NORMAL_DIGIT}, "
        f"mixed/ {counts['mixed']} in 10 digit folders, flat/ {counts['flat']} unlabelled"
    )


if __name__ == "__main__":
    run(main)
