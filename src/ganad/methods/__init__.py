"""The method registry, and which library code each method's stages run.

Every method is a package `ganad.methods.<name>`: its `__init__.py` holds only its
`Config` dataclass (light: params are checked without importing torch) and its
`model.py` the method itself, a `ganad.methods.base.Method` subclass with its
networks, losses, training step and score. Adding a method is one package, one line
in `REGISTRY` and one `methods.<name>` params section.

`SHARED_CODE` is the library code that every method's train and score stages run;
a method's own code is its package folder. `code_version` hashes these files into
every checkpoint. The stages depend on them through `CODE_GROUPS`: the `code` stage
writes one digest per group (a file's hash per line), and a stage depends on the
digest instead of listing its files, which keeps dvc.lock small (DVC parses and
rewrites the whole lock after every stage). tests/test_code_deps.py checks dvc.yaml,
the groups and the imports agree.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

from ..checks import ParamsError

PACKAGE = Path(__file__).resolve().parents[1]  # src/ganad

# registry name -> the class in ganad.methods.<name>.model
REGISTRY: dict[str, str] = {
    "adae": "ADAE",
    "adgan": "ADGAN",
    "dcae": "DCAE",
    "vae": "VAE",
    "cevae": "CEVAE",
    "kde": "KDE",
    "kde_alexnet": "KDEAlexNet",
    "ocsvm": "OCSVM",
    "ocsvm_alexnet": "OCSVMAlexNet",
    "iforest": "IForest",
    "gmm": "GMM",
    "anogan": "AnoGAN",
    "ganomaly": "GANomaly",
    "egbad": "EGBAD",
    "igmm_gan": "IGMMGAN",
}

# Library modules (relative to src/ganad) that the train and score stages of every method import.
SHARED_CODE = (
    "bigan.py", "checks.py", "cli.py", "config.py", "device.py", "executors.py", "features.py", "images.py",
    "layout.py", "nets.py", "neural.py", "pipeline.py", "protocols.py", "scoretable.py", "sources.py", "store.py",
    "training.py",
    "methods/__init__.py", "methods/base.py",
)
# What nearly every stage reads params, paths and data with (a subset of SHARED_CODE).
BASE_CODE = (
    "checks.py", "cli.py", "config.py", "device.py", "executors.py", "layout.py", "protocols.py", "sources.py",
    "methods/__init__.py",
)
# The digests the `code` stage writes (data/code/<group>.txt), which stages depend on in place of the files.
CODE_GROUPS = {"base": BASE_CODE, "methods": SHARED_CODE}


def check_name(name: str, key: str = "method") -> str:
    if name not in REGISTRY:
        raise ParamsError(f"{key} = {name!r} is invalid: allowed names from {sorted(REGISTRY)}")
    return name


def config_class(name: str) -> type:
    """The method's Config dataclass (imports only the light package `__init__`)."""
    return importlib.import_module(f"{__name__}.{check_name(name)}").Config


def method_class(name: str):
    """The method's class (imports torch and the method's code)."""
    return getattr(importlib.import_module(f"{__name__}.{check_name(name)}.model"), REGISTRY[name])


def method_code(name: str, package: Path = PACKAGE) -> list[str]:
    """Every library file the train and score stages of `name` run, relative to src/ganad."""
    own = sorted(p.relative_to(package).as_posix() for p in (package / "methods" / check_name(name)).rglob("*.py"))
    return sorted(SHARED_CODE) + own


def code_version(name: str, package: Path = PACKAGE) -> str:
    """A hash of `method_code(name)`. It goes into every checkpoint's fingerprint, so that after a code
    change `dvc repro` retrains instead of resuming a finished checkpoint of the old code."""
    digest = hashlib.sha256()
    for rel in method_code(name, package):
        digest.update(rel.encode() + b"\0" + (package / rel).read_bytes())
    return digest.hexdigest()[:16]


def code_digest(files: tuple[str, ...], package: Path = PACKAGE) -> str:
    """One line per file, `sha256  path` (as sha256sum prints it): what a stage depending on the group sees."""
    return "".join(f"{hashlib.sha256((package / rel).read_bytes()).hexdigest()}  src/ganad/{rel}\n"
                   for rel in sorted(files))
