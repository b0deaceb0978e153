"""Every stage depends on the library code it runs, derived from the imports, and on no other method's code.

dvc.yaml lists no library file: each stage depends on its script and on the `code` stage's digest of what
that script's imports reach (`ganad.engine.code`), and a per-method stage on its method's digest. These tests
check the wiring in dvc.yaml, that the digests hold every module a stage really imports when it runs, and
that a digest changes with its own files only.
"""

import shutil
import subprocess
import sys

import pytest
import yaml

from ganad.engine import code
from ganad.methods import REGISTRY

from conftest import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]  # brain_* bodies come in by YAML merge keys
MAIN = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["method"]
# the variable that names a per-method stage's method, by script
METHOD_OF = {
    "train_score": "${item.method}",
    "score": "${item.method}",
    "figures": "${model.method}",
    "rank_train": "${rank.method}",
    "rank_score": "${rank.method}",
}


def body(stage: str) -> dict:
    return STAGES[stage].get("do", STAGES[stage])


def script(stage: str) -> str:
    """The stage script a stage runs (`python stages/<script>.py ...`): brain_train_score runs train_score.py."""
    return body(stage)["cmd"].split()[1].removeprefix("stages/").removesuffix(".py")


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "code"])
def test_every_stage_depends_on_its_script_and_digests_only(stage):
    deps = body(stage)["deps"]
    kind = script(stage)
    expected = {f"stages/{kind}.py", f"data/code/stage/{kind}.txt"}
    if kind in METHOD_OF:
        expected.add(f"data/code/method/{METHOD_OF[kind]}.txt")
    code_deps = {d for d in deps if d.startswith(("src/", "stages/", "data/code/"))}
    assert code_deps == expected


def test_the_code_stage_reads_the_whole_library_and_every_script():
    spec = STAGES["code"]
    assert set(spec["deps"]) == {"stages", "src/ganad"} and spec["outs"] == ["data/code"]


def test_digests_cover_every_stage_script_and_method(tmp_path):
    (tmp_path / "stages").mkdir()
    for script_path in (ROOT / "stages").glob("*.py"):
        shutil.copy(script_path, tmp_path / "stages")
    written = code.write_digests(tmp_path)
    kinds = {p.stem for p in (ROOT / "stages").glob("*.py")} - {"code"}
    assert {p.relative_to(tmp_path).as_posix() for p in written} == (
        {f"data/code/stage/{k}.txt" for k in kinds} | {f"data/code/method/{m}.txt" for m in REGISTRY}
    )
    text = code.method_digest("dcae", tmp_path).read_text()
    assert "src/ganad/methods/dcae/model.py" in text and "src/ganad/methods/vae/" not in text
    assert "src/ganad/methods/adae/" not in code.stage_digest("train_score", tmp_path).read_text()


RUNTIME_PROBE = """
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
{extra}
print("MODULES", *sorted(m for m in sys.modules if m == "ganad" or m.startswith("ganad.")))
"""


@pytest.mark.parametrize("kind", sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "code"))
def test_a_digest_holds_every_module_its_stage_imports_when_it_runs(kind):
    """The static walk misses nothing: the modules loaded by running the script (its imports, and for a
    per-method stage the main model's package as the registry loads it) are all in the stage's digests."""
    extra = ""
    if kind in METHOD_OF:
        extra = f"from ganad.methods import method_class; method_class({MAIN!r})"
    probe = RUNTIME_PROBE.format(script=str(ROOT / "stages" / f"{kind}.py"), extra=extra)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {code.module_file(m) for m in out.stdout.split("MODULES", 1)[1].split()}
    listed = set(code.stage_code(ROOT / "stages" / f"{kind}.py"))
    if kind in METHOD_OF:
        listed |= set(code.method_code(MAIN))
    missing = sorted(p.relative_to(ROOT).as_posix() for p in loaded - listed)
    assert not missing, f"stages/{kind}.py runs {missing}, which its digests do not list"


@pytest.fixture
def library_copy(tmp_path, monkeypatch):
    """A copy of src/ganad that `ganad.engine.code` reads instead of the real one."""
    shutil.copytree(ROOT / "src" / "ganad", tmp_path / "src" / "ganad", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "SRC", tmp_path / "src")
    code.imports_of.cache_clear()
    yield tmp_path / "src" / "ganad"
    code.imports_of.cache_clear()


def digests() -> dict[str, str]:
    stages = {p.stem: code.digest_text(code.stage_code(p)) for p in (ROOT / "stages").glob("*.py")}
    return {
        **{f"stage/{k}": v for k, v in stages.items()},
        **{f"method/{m}": code.digest_text(code.method_code(m)) for m in REGISTRY},
    }


def edit(path) -> None:
    path.write_text(path.read_text() + "#\n")


def test_editing_one_method_changes_that_methods_digest_only(library_copy):
    before = digests()
    edit(library_copy / "methods" / "dcae" / "model.py")
    after = digests()
    assert [k for k in before if before[k] != after[k]] == ["method/dcae"]


def test_editing_shared_code_changes_every_digest_that_reaches_it(library_copy):
    before = digests()
    edit(library_copy / "methods" / "common" / "training.py")  # the skeleton of every network method
    changed = {k for k in before if before[k] != digests()[k]}
    assert {f"method/{m}" for m in REGISTRY} <= changed  # the feature baselines batch images through it too
    assert "stage/fetch" not in changed and "stage/split" not in changed
    edit(library_copy / "evaluation" / "tables.py")  # the report's tables: no training reaches them
    assert {k for k in before if before[k] != digests()[k]} == changed | {"stage/report"}


def test_code_version_follows_the_code_that_trains(library_copy):
    before = {name: code.code_version(name, "ganad.engine.jobs") for name in REGISTRY}
    edit(library_copy / "methods" / "dcae" / "model.py")
    after = {name: code.code_version(name, "ganad.engine.jobs") for name in REGISTRY}
    assert [n for n in REGISTRY if after[n] != before[n]] == ["dcae"]
    edit(library_copy / "evaluation" / "figures.py")
    assert {name: code.code_version(name, "ganad.engine.jobs") for name in REGISTRY} == after
    edit(library_copy / "engine" / "jobs.py")
    assert all(code.code_version(n, "ganad.engine.jobs") != after[n] for n in REGISTRY)


def test_params_checks_import_nothing_heavy():
    """The data stages' params loading, and every method's Config, import neither torch nor scikit-learn nor numba."""
    probe = (
        "import sys; from ganad.config.params import load_params; from ganad.methods import REGISTRY; "
        "p = load_params(); [p.method_config(m, 1) for m in REGISTRY]; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn', 'numba', 'skops'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
