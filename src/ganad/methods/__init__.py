"""The method registry: adding a method is one module, one line here and one params section."""

from .adae import ADAE
from .adgan import ADGAN
from .base import Method, MethodUnavailable, ParamsError
from .classical import GMM, KDE, OCSVM, IForest, KDEAlexNet, OCSVMAlexNet
from .dcae import DCAE
from .vae import VAE

__all__ = ["REGISTRY", "Method", "MethodUnavailable", "ParamsError", "get_method"]

REGISTRY: dict[str, type[Method]] = {
    "adae": ADAE,
    "adgan": ADGAN,
    "dcae": DCAE,
    "vae": VAE,
    "kde": KDE,
    "kde_alexnet": KDEAlexNet,
    "ocsvm": OCSVM,
    "ocsvm_alexnet": OCSVMAlexNet,
    "iforest": IForest,
    "gmm": GMM,
}


def get_method(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise ParamsError(f"unknown method '{name}'; known: {sorted(REGISTRY)}")
    return REGISTRY[name]
