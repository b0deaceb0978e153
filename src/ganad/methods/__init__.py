"""The method registry: every method by name, its class imported only when asked for.

Every method is a package `ganad.methods.<name>`: its `__init__.py` holds only its
`Config` (a pydantic `ganad.schema.Section`, light: params are checked without importing torch) and its
`model.py` the method itself, a `ganad.methods.base.Method` subclass with its
networks, losses, training step and score. Adding a method is one package, one line
in `REGISTRY` and one `methods.<name>` params section.

Which library files a method's stages run is derived from the imports (`ganad.engine.code`): the `code`
stage writes one digest per method and per stage script, and the stages depend on those digests.
"""

from __future__ import annotations

import importlib

from ganad.errors import ParamsError

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


def check_name(name: str, key: str = "method") -> str:
    if name not in REGISTRY:
        raise ParamsError(f"{key} = {name!r} is invalid: allowed names from {sorted(REGISTRY)}")
    return name


def config_class(name: str) -> type:
    """The method's Config model (imports only the light package `__init__`)."""
    return importlib.import_module(f"{__name__}.{check_name(name)}").Config


def method_class(name: str):
    """The method's class (imports torch and the method's code)."""
    return getattr(importlib.import_module(f"{__name__}.{check_name(name)}.model"), REGISTRY[name])
