"""Regenerate params.yaml from conf/ the way `dvc exp run` does, for a plain `dvc repro`.

python -m ganad.config.compose                      # the default profile
python -m ganad.config.compose profile=paper        # any Hydra overrides
"""

import sys
from pathlib import Path

from dvc.utils.hydra import compose_and_dump


def compose(out: Path, overrides: list[str], root: Path = Path(".")) -> None:
    compose_and_dump(out, str(root.resolve() / "conf"), None, "config", str(root.resolve()), overrides)


if __name__ == "__main__":
    compose(Path("params.yaml"), sys.argv[1:])
