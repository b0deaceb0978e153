"""code: the digests of the library code each stage kind and each method runs, which the stages depend on."""

import click

from ganad.engine.code import write_digests
from ganad.runtime.stage import run


@click.command()
def main() -> None:
    """Write data/code/stage/<kind>.txt for each script stages/<kind>.py and data/code/method/<name>.txt for each
    method of the registry: `sha256  path` per library file that the script's or the method's imports reach.

    A stage depends on its script and its digest instead of a hand-kept list of files; a digest changes exactly
    when one of its files does, so editing a file reruns the stages whose imports reach it, and no others.
    """
    for path, count in write_digests().items():
        click.echo(f"{path}: {count} files")


if __name__ == "__main__":
    run(main)
