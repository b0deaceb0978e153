"""Every stage depends on the library code it runs, and on no other method's code.

The imports of each stage script are followed through `ganad` (statically, every
import statement in every function included, and the registry's lazy imports of
method packages) and each file reached must be a dependency of that stage in
dvc.yaml, directly or through the digest of a group of `ganad.methods.CODE_GROUPS`
that the `code` stage writes. The train and score stages must depend on exactly the
digest of `ganad.methods.SHARED_CODE` plus the method's own package, the same files
`code_version` hashes into checkpoints, so editing one method's package reruns that
method's stages alone.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ganad import layout
from ganad.methods import BASE_CODE, CODE_GROUPS, REGISTRY, SHARED_CODE, code_digest, code_version, method_code
from conftest import ROOT

SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]  # brain_* bodies come in by YAML merge keys
# stage scripts that run one method of the registry: train and score per method, rank_* the one `rank.method` names
PER_METHOD = ("train", "score", "rank_train", "rank_score")


def script(stage: str) -> str:
    """The stage script a stage runs (`python stages/<script>.py ...`): brain_train runs train.py."""
    return STAGES[stage].get("do", STAGES[stage])["cmd"].split()[1].removeprefix("stages/").removesuffix(".py")
MAIN = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["method"]


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports_of(path: Path, module: str) -> set[str]:
    """The ganad modules `path` (module `module`) imports anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            base = ".".join(p for p in (base, node.module or "") if p)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    return {m for m in found if m.split(".")[0] == "ganad" and module_file(m)}


def closure(roots: set[str], registry: dict[str, bool]) -> set[Path]:
    """Files reached from `roots`; `registry` says which method packages the stage loads through the registry
    (name -> also its model module)."""
    todo, seen = list(roots), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        todo += sorted(imports_of(module_file(module), module))
        if module == "ganad.methods":
            for name, with_model in registry.items():
                todo += [f"ganad.methods.{name}"] + ([f"ganad.methods.{name}.model"] if with_model else [])
    return {module_file(m) for m in seen} - {SRC / "ganad" / "__init__.py"}


def stage_script_imports(name: str) -> set[str]:
    tree = ast.parse((ROOT / "stages" / f"{name}.py").read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ganad")} | {
        f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "ganad"
        for a in n.names if module_file(f"ganad.{a.name}")}


def registry_use(stage: str, method: str | None) -> dict[str, bool]:
    if stage == "configure":
        return dict.fromkeys(REGISTRY, False)
    if stage in PER_METHOD:
        return {method: True}
    if stage == "figures":
        return {MAIN: True}
    return {}


DIGESTS = {layout.code_digest(group).as_posix(): {f"src/ganad/{f}" for f in files} for group, files in CODE_GROUPS.items()}


def covered(path: Path, deps: list[str]) -> bool:
    """A dependency of the stage: listed, inside a listed folder, or in a listed digest's group."""
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") or rel in DIGESTS.get(d, ()) for d in deps)


def stage_deps(stage: str, method: str | None) -> list[str]:
    """The stage's deps for `method`; a `foreach` stage declares them in its `do` body."""
    spec = STAGES[stage].get("do", STAGES[stage])
    return [d.replace("${item.method}", method or "").replace("${rank.method}", method or "")
            .replace("${model.method}", MAIN) for d in spec["deps"]]


CASES = [(stage, method) for stage in STAGES
         for method in (sorted(REGISTRY) if script(stage) in PER_METHOD else [None])]


@pytest.mark.parametrize("stage, method", CASES, ids=[f"{s}-{m}" if m else s for s, m in CASES])
def test_every_stage_depends_on_the_library_code_it_imports(stage, method):
    deps = stage_deps(stage, method)
    assert f"stages/{script(stage)}.py" in deps
    reached = closure(stage_script_imports(script(stage)), registry_use(script(stage), method))
    missing = sorted(p.relative_to(ROOT).as_posix() for p in reached if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage} runs {missing} but does not depend on them"
    for dep in deps:
        if dep.startswith(("src/", "stages/")):
            assert (ROOT / dep).exists(), dep


@pytest.mark.parametrize("stage", ["train", "score", "brain_train", "brain_score"])
def test_model_stages_list_exactly_the_declared_code(stage):
    """One declared list (SHARED_CODE + the method's package) feeds dvc.yaml, code_version and this test."""
    library = {d for d in STAGES[stage]["deps"] if d.startswith(("src/", "data/code/"))}
    assert library == {"data/code/methods.txt", "src/ganad/methods/${item.method}"}
    for name in REGISTRY:
        own = [f for f in method_code(name) if f not in SHARED_CODE]
        assert own and all(f.startswith(f"methods/{name}/") for f in own)


def test_the_code_stage_digests_every_group_and_nothing_else():
    code = STAGES["code"]
    assert set(code["deps"]) == {"stages/code.py"} | set().union(*DIGESTS.values())
    assert code["outs"] == sorted(DIGESTS)
    assert set(BASE_CODE) <= set(SHARED_CODE)
    digested = {d for spec in STAGES.values() for d in spec.get("do", spec)["deps"] if d.startswith("data/code/")}
    assert digested == set(DIGESTS)


def test_a_digest_changes_with_its_own_files_only(tmp_path):
    package = tmp_path / "ganad"
    shutil.copytree(SRC / "ganad", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {group: code_digest(files, package) for group, files in CODE_GROUPS.items()}
    assert before == {group: code_digest(files) for group, files in CODE_GROUPS.items()}  # the copy reads the same
    (package / "neural.py").write_text((package / "neural.py").read_text() + "#\n")
    after = {group: code_digest(files, package) for group, files in CODE_GROUPS.items()}
    assert after["base"] == before["base"] and after["methods"] != before["methods"]
    (package / "config.py").write_text((package / "config.py").read_text() + "#\n")
    last = {group: code_digest(files, package) for group, files in CODE_GROUPS.items()}
    assert all(last[group] != after[group] for group in CODE_GROUPS)
    (package / "figures.py").write_text("# reports only\n")
    assert {group: code_digest(files, package) for group, files in CODE_GROUPS.items()} == last


def test_the_package_init_runs_no_code():
    """src/ganad/__init__.py is in no stage's deps: it may hold a version string, nothing that computes."""
    tree = ast.parse((SRC / "ganad" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]


def test_code_version_follows_the_methods_own_code_only(tmp_path):
    package = tmp_path / "ganad"
    shutil.copytree(SRC / "ganad", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {name: code_version(name, package) for name in REGISTRY}
    (package / "methods" / "dcae" / "model.py").write_text((package / "methods" / "dcae" / "model.py").read_text() + "#\n")
    after = {name: code_version(name, package) for name in REGISTRY}
    assert [n for n in REGISTRY if after[n] != before[n]] == ["dcae"]
    (package / "figures.py").write_text("# reports only\n")
    assert {name: code_version(name, package) for name in REGISTRY} == after
    (package / "neural.py").write_text((package / "neural.py").read_text() + "#\n")
    assert all(code_version(n, package) != after[n] for n in REGISTRY)


def test_params_checks_import_nothing_heavy():
    """The data stages' params loading, and every method's Config, import neither torch nor scikit-learn nor numba."""
    code = ("import sys; from ganad.config import load_params; from ganad.methods import REGISTRY, config_class; "
            "p = load_params(); [p.method_config(m, 1) for m in REGISTRY]; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn', 'numba', 'skops'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
