"""code: digests of the library code many stages share, which those stages depend on."""

import click

from ganad import layout
from ganad.cli import run
from ganad.methods import CODE_GROUPS, code_digest


@click.command()
def main() -> None:
    """Write data/code/<group>.txt for each group of ganad.methods.CODE_GROUPS: `sha256  path` per file.

    A stage depends on a group's digest instead of listing its files. DVC parses and rewrites the
    whole dvc.lock after every stage, and the files listed in each of some hundred stages made up
    two thirds of it; a digest is one entry. A group's digest changes exactly when one of its files
    does, so editing a file reruns the same stages as listing it would.
    """
    for group, files in CODE_GROUPS.items():
        path = layout.code_digest(group)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code_digest(files))
        click.echo(f"{path}: {len(files)} files")


if __name__ == "__main__":
    run(main)
