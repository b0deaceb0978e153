"""A run kept in parts by method, joined into one results page: the same tables as the run in one go."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ganad.errors import ParamsError
from ganad.evaluation.join import join
from ganad.runtime.keep import keep

from conftest import invoke, make_workspace, prepare_data

PROTOCOLS = ("leave_one_class_out", "one_class_normal", "leave_one_class_out_leaky")


def run(workspace: Path, methods: list[str], main: str, **settings) -> None:
    """The pipeline's stages for `methods` alone (the tiny workspace, both protocols, the leak audit)."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"].update(methods=methods, audit_protocols=["leave_one_class_out_leaky"])
    params["model"]["method"], params["brain"]["methods"] = main, [main]
    params["methods"]["kde"] = {"max_train": 200}
    params.update(settings)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(workspace / "reports/figures", ignore_errors=True)  # as DVC removes a stage's outputs first
    prepare_data(*PROTOCOLS)
    for method in methods:
        for protocol in PROTOCOLS[:2]:
            invoke("train_score", "--dataset", "mnist", "--protocol", protocol, "--method", method)
        invoke("score", "--dataset", "mnist", "--protocol", PROTOCOLS[2], "--method", method)
    for protocol in PROTOCOLS:
        invoke("evaluate", "--dataset", "mnist", "--protocol", protocol)
    invoke("figures", "--dataset", "mnist", "--protocol", "one_class_normal")
    invoke("report")


def kept_part(workspace: Path, name: str, methods: list[str], notes=("tiny data",)) -> Path:
    """Keep the workspace's run as `name`, with what keep takes from a DVC workspace."""
    selected = [
        p.relative_to(workspace) for p in (workspace / "data/scores").rglob("*.selected.json") if p.stem[:-9] in methods
    ]
    outputs = [Path(p) for p in ("reports/results.md", "reports/tables", "reports/metrics", "reports/figures")]
    outputs += [Path("reports/curves"), Path("data/config/mnist"), *selected]
    return keep(name, f"run.methods={methods}", workspace, stale=[], notes=notes, outputs=outputs)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """The run of dcae, kde and iforest in one go (its tables and metrics), then in two kept parts."""
    workspace = make_workspace(tmp_path_factory.mktemp("workspace"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        return runs_in_parts(workspace)


def runs_in_parts(workspace: Path):
    # the archive at a relative path under data/, as a real run keeps it (data/external/): the join reads it
    # for the budget column and must not copy it
    (workspace / "data/external").mkdir(parents=True)
    (workspace / "tiny.npz").rename(workspace / "data/external/tiny.npz")
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["data"]["mnist"]["npz_path"] = "data/external/tiny.npz"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    run(workspace, ["dcae", "kde", "iforest"], "dcae")
    reports = workspace / "reports"
    files = [*(reports / "tables").glob("*.csv"), *(reports / "metrics").rglob("*.*")]
    whole = {p.relative_to(reports): p.read_bytes() for p in files}
    run(workspace, ["dcae", "kde"], "dcae")
    kept_part(workspace, "part_a", ["dcae", "kde"])
    run(workspace, ["iforest"], "iforest")  # configure now holds iforest's settings alone
    kept_part(workspace, "part_b", ["iforest"], notes=("tiny data", "iforest alone"))
    return workspace, whole


def test_parts_join_into_the_tables_and_metrics_of_the_run_in_one_go(parts):
    workspace, whole = parts
    dest = join("joint", ["part_a", "part_b"], "two parts", workspace)
    for path, content in whole.items():  # every table and metrics file byte for byte, floors once
        assert (dest / path).read_bytes() == content, path
    page = (dest / "results.md").read_text()
    assert page.startswith("# ganad results: joint, joined from 2 parts\n\nJoined run `joint`: 2 parts")
    assert "| [part_a](../part_a/RUN.md) | `unknown`" in page  # no git here: the commit is unknown
    assert "| dcae, kde | `run.methods=['dcae', 'kde']` |" in page and "| iforest | `run.methods=['iforest']` |" in page
    assert "About this run:\n\n- tiny data\n- part_b: iforest alone\n" in page  # shared notes once, others by part
    headline = page.split("## mnist, one-class-normal")[1].split("\n\n")[1]
    for row in ("dcae", "kde", "iforest", "floor_mean_image"):
        assert f"| {row} " in headline
    assert "## mnist: the leak audit" in page
    budgets = page.split("## mnist: budgets")[1].split("##")[0]
    assert "| dcae " in budgets and "epochs 2" in budgets  # part_a's configured settings, not the workspace's
    # both parts drew the mean ROC: both kept, the second named by its part
    figures = dest / "figures/mnist_one_class_normal"
    assert (figures / "mnist_one_class_normal_mean_roc.png").is_file()
    assert (figures / "mnist_one_class_normal_mean_roc_part_b.png").is_file()
    assert {p.name.split("_")[4] for p in figures.glob("*_ranked*.png")} == {"dcae", "iforest"}
    for link in re.findall(r"\]\(((?:tables|metrics|figures)/[^)]+)\)", page):
        assert (dest / link).is_file(), link
    assert yaml.safe_load((dest / "params.yaml").read_text())["run"]["methods"] == ["dcae", "kde", "iforest"]
    assert {p.name for p in (dest / "data").iterdir()} == {"config", "scores"}  # no workspace data
    record = json.loads((dest / "kept.json").read_text())
    assert [p["methods"] for p in record["parts"]] == [["dcae", "kde"], ["iforest"]]
    assert "part_b" in (dest / "RUN.md").read_text()
    # a part that configured a method otherwise than the joint run would (a part's main model takes
    # model.latent_dim): refused, the joint run left as it was
    spoiled = workspace / "reports/runs/part_s"
    shutil.copytree(workspace / "reports/runs/part_a", spoiled)
    config = json.loads((spoiled / "data/config/mnist/dcae.json").read_text())
    (spoiled / "data/config/mnist/dcae.json").write_text(json.dumps({**config, "latent_dim": 99}))
    with pytest.raises(ParamsError, match=r"part 'part_s' configured dcae with other settings.*latent_dim"):
        join("joint", ["part_s", "part_b"], "", workspace)
    shutil.rmtree(spoiled)
    assert json.loads((dest / "kept.json").read_text()) == record


def test_parts_that_are_not_one_run_are_refused_and_nothing_is_written(parts, tmp_path):
    runs = tmp_path / "reports/runs"  # copies of the kept parts, to spoil
    for part in ("part_a", "part_b"):
        shutil.copytree(parts[0] / "reports/runs" / part, runs / part)
    workspace = tmp_path
    with pytest.raises(ParamsError, match="'.*part_c' not found: keep each part first"):
        join("joint", ["part_a", "part_c"], "", workspace)
    with pytest.raises(ParamsError, match="two or more different kept parts"):
        join("joint", ["part_a", "part_a"], "", workspace)
    shutil.copytree(runs / "part_a", runs / "part_a2")
    with pytest.raises(ParamsError, match="method dcae is in parts 'part_a' and 'part_a2'"):
        join("joint", ["part_a", "part_a2"], "", workspace)
    # another split seed: the settings differ
    params = yaml.safe_load((runs / "part_b/params.yaml").read_text())
    (runs / "part_b/params.yaml").write_text(yaml.safe_dump({**params, "seed": 7}))
    with pytest.raises(ParamsError, match=r"'part_a' and 'part_b' differ in seed \(0 against 7\)"):
        join("joint", ["part_a", "part_b"], "", workspace)
    (runs / "part_b/params.yaml").write_text(yaml.safe_dump(params))
    # a floor scored on other test images
    detail = runs / "part_b/metrics/classes/mnist_leave_one_class_out.csv"
    table = pd.read_csv(detail)
    table.loc[table["method"] == "floor_intensity", "auroc"] += 0.01
    table.to_csv(detail, index=False)
    with pytest.raises(ParamsError, match="floors of 'part_b' differ from 'part_a''s"):
        join("joint", ["part_a", "part_b"], "", workspace)
    (runs / "part_b/kept.json").unlink()
    with pytest.raises(ParamsError, match="kept.json' not found.*keep it again"):
        join("joint", ["part_a", "part_b"], "", workspace)
    assert not (runs / "joint").exists()
