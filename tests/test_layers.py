"""The library is layered by role: a module imports only from its own package or from the packages before it
(the order `ganad/__init__.py` states), so dependencies never run back up."""

from pathlib import Path

import pytest

from ganad.engine.code import PACKAGE, imports_of

LAYERS = [
    "errors",
    "files",
    "schema",
    "data",
    "runtime",
    "methods",
    "config",
    "engine",
    "evaluation",
    "studies",
    "demos",
]


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


MODULES = sorted(
    ".".join(("ganad", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.parent != PACKAGE or p.name != "__init__.py"
)


def test_every_module_belongs_to_a_layer():
    assert {m.split(".")[1] for m in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_from_a_layer_above(module):
    path = PACKAGE.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    above = sorted(m for m in imports_of(path, module) if m != "ganad" and layer(m) > layer(module))
    assert not above, f"{module} imports from a layer above it: {above}"


def test_a_method_imports_no_other_method():
    for path in (PACKAGE / "methods").glob("*/**/*.py"):
        own = path.relative_to(PACKAGE / "methods").parts[0]
        if own == "common":
            continue
        module = "ganad.methods." + ".".join(path.relative_to(PACKAGE / "methods").with_suffix("").parts)
        others = {
            m.split(".")[2]
            for m in imports_of(Path(path), module.removesuffix(".__init__"))
            if m.startswith("ganad.methods.") and m.split(".")[2] not in (own, "common", "base", "configs")
        }
        assert not others, f"{module} imports other methods' packages {sorted(others)}"
