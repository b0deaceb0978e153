"""The method registry: adding a method is one module, one line here and one params section."""

from .base import Method, ParamsError
from .dcae import DCAE

REGISTRY: dict[str, type[Method]] = {
    "dcae": DCAE,
}


def get_method(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise ParamsError(f"unknown method '{name}'; known: {sorted(REGISTRY)}")
    return REGISTRY[name]
