"""Which library code each stage runs, derived from the imports, and its digests.

DVC reruns a stage when a file it depends on changes. Rather than listing library files
by hand, the `code` stage follows the imports (statically: every import statement in
every function, relative or absolute, and the parent packages that run first) from

- each stage script `stages/<kind>.py`: `data/code/stage/<kind>.txt`;
- each method package `ganad.methods.<name>` and its `model` module, which the registry
  imports by name at run time: `data/code/method/<name>.txt`;

and writes one line per file reached, `sha256  path`, as sha256sum prints it. A stage
depends on its script and its digest (a per-method stage on its method's digest too):
a digest changes exactly when one of the files it lists does, so editing one method's
package reruns that method's stages alone, and editing shared code reruns every stage
whose imports reach it. `code_version` hashes the same files into each checkpoint's
fingerprint, so that a finished checkpoint of older code is not resumed.

Imports the registry makes by name are the one thing a static walk cannot see: a stage
that reads every method's `Config` (configure) names them in `REGISTRY_IMPORTS`.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from ganad.files import write_text
from ganad.methods import REGISTRY

SRC = Path(__file__).resolve().parents[2]  # src/
PACKAGE = SRC / "ganad"
DIGESTS = Path("data") / "code"  # the code stage's outputs, relative to the repository root
# Stage scripts that import every method's light package (its Config) through the registry by name.
REGISTRY_IMPORTS = {"configure": tuple(f"ganad.methods.{name}" for name in REGISTRY)}


def module_file(module: str) -> Path | None:
    """The source file of a ganad module or package, or None when there is none."""
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def imports_of(path: Path, module: str | None) -> frozenset[str]:
    """The ganad modules that the file `path` (module `module`; None for a script) imports anywhere in its body:
    `from a import b` counts `a`, and `a.b` when b is a module."""
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else ""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            base = ".".join(p for p in (base, node.module or "") if p)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    return frozenset(m for m in found if m.split(".")[0] == "ganad" and module_file(m))


def reached(modules, scripts=()) -> list[Path]:
    """Every library file that importing `modules` and running `scripts` executes, sorted."""
    todo = list(modules) + [m for script in scripts for m in imports_of(Path(script), None)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        todo += sorted(imports_of(module_file(module), module))
    return sorted(module_file(m) for m in seen)


def stage_code(script: Path) -> list[Path]:
    """The library files a stage script runs, its registry imports included."""
    return reached(REGISTRY_IMPORTS.get(Path(script).stem, ()), [script])


def method_code(name: str) -> list[Path]:
    """The library files a method runs: its package, its model module and all they import."""
    return reached([f"ganad.methods.{name}", f"ganad.methods.{name}.model"])


def digest_text(files) -> str:
    """One line per file, `sha256  path` (the path relative to src/'s parent, as dvc.yaml spells it)."""
    return "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(SRC.parent).as_posix()}\n"
        for p in sorted(set(files))
    )


def code_version(name: str, *modules: str) -> str:
    """A hash of the method's code and of `modules` (the job code that trains it): every checkpoint's fingerprint
    holds it, so that after a code change `dvc repro` retrains instead of resuming a checkpoint of the old code."""
    text = digest_text(method_code(name) + reached(modules))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_digest(kind: str, root: Path = Path(".")) -> Path:
    return root / DIGESTS / "stage" / f"{kind}.txt"


def method_digest(name: str, root: Path = Path(".")) -> Path:
    return root / DIGESTS / "method" / f"{name}.txt"


def write_digests(root: Path = Path(".")) -> dict[Path, int]:
    """Write every stage kind's and every method's digest under `root`; returns each file with its line count.
    A digest whose text is unchanged is not rewritten."""
    wanted = {
        stage_digest(s.stem, root): stage_code(s) for s in sorted((root / "stages").glob("*.py")) if s.stem != "code"
    }
    wanted |= {method_digest(name, root): method_code(name) for name in REGISTRY}
    for folder in {p.parent for p in wanted}:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(folder.glob("*.txt")) - set(wanted):
            stale.unlink()  # a stage script or method that no longer exists
    for path, files in wanted.items():
        text = digest_text(files)
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
    return {path: len(files) for path, files in wanted.items()}
