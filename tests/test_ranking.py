"""Ranking folders of images: the rank_* stage scripts on tiny generated PNGs, in a scratch folder.

Normal images are dark discs, anomalies bright bars: a DCAE of width 8 trained for a
second tells them apart. Bad input stops with a message naming the params key or the
path and the fix, and leaves what was written before as it was.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from sklearn.metrics import roc_auc_score

from ganad.config.params import load_params, parse_params
from ganad.errors import ParamsError
from ganad.studies.ranking import rank_collection, rank_params

from conftest import ROOT, invoke, stage

GRID = 3  # rank.grid_count: collections need at least 6 images


def failure(name, *args) -> str:
    """The message of the exception that stopped the stage."""
    result = CliRunner().invoke(stage(name), list(args))
    assert result.exit_code != 0 and result.exception is not None, result.output
    return str(result.exception)


def shape(kind: str, rng: np.random.Generator) -> np.ndarray:
    """28x28 grey: a dark disc (normal) or a bright bar (anomalous), placed at random near the centre."""
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(11, 17, size=2)
    image = np.zeros((28, 28), dtype=np.uint8)
    if kind == "disc":
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(25, 40)] = 80
    else:
        image[(np.abs(xx - cx) < 2) & (np.abs(yy - cy) < 11)] = 255
    return image


def write_images(folder: Path, kinds: list[str], seed: int) -> dict[str, str]:
    """One PNG per kind, in shuffled order (names say nothing of the kind); returns {path: kind}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, k in enumerate(rng.permutation(len(kinds))):
        Image.fromarray(shape(kinds[k], rng)).save(folder / f"{i:03d}.png")
        written[(folder / f"{i:03d}.png").relative_to(folder.parents[1]).as_posix()] = kinds[k]
    return written


def set_rank(workspace: Path, **changes) -> None:
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["rank"].update(changes)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """normal/: 64 discs; flat/: 6 discs and 6 bars, unlabelled; labelled/disc, labelled/bar: 8 of each."""
    write_images(tmp_path / "images/normal", ["disc"] * 64, seed=1)
    write_images(tmp_path / "images/flat", ["disc"] * 6 + ["bar"] * 6, seed=2)
    write_images(tmp_path / "images/labelled/disc", ["disc"] * 8, seed=3)
    write_images(tmp_path / "images/labelled/bar", ["bar"] * 8, seed=4)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["device"] = "cpu"
    params["methods"]["dcae"] = {
        "latent_dim": "auto",
        "width": 8,
        "epochs": 6,
        "min_steps": 0,
        "batch_size": 16,
        "lr": 0.002,
    }
    params["rank"] = {
        "normal": "images/normal",
        "collections": {"flat": "images/flat", "labelled": "images/labelled"},
        "normal_label": "disc",
        "method": "dcae",
        "val_fraction": 0.1,
        "grid_count": GRID,
        "channels": "auto",
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def outputs(workspace: Path, collection: str) -> dict[str, bytes]:
    folder = workspace / "reports/ranking" / collection
    return {name: (folder / name).read_bytes() for name in ("scores.csv", "ranked.png", "metrics.json")}


def test_the_stage_scripts_explain_themselves():
    for name in ("rank_demo", "rank_train", "rank_score"):
        result = CliRunner().invoke(stage(name), ["--help"])
        assert result.exit_code == 0 and "Usage" in result.output and "Write" in result.output


def test_ranking_a_flat_folder(workspace):
    output = invoke("rank_train")
    assert "train 58, val 6" in output and (workspace / "models/ranking/dcae.safetensors").is_file()
    assert (workspace / "reports/training/ranking/dcae/plots/metrics/train_loss.tsv").is_file()
    invoke("rank_score", "--collection", "flat")

    table = pd.read_csv(workspace / "reports/ranking/flat/scores.csv")
    assert list(table.columns) == ["path", "score", "rank", "p_value", "flagged"]
    assert sorted(table["path"]) == sorted(f"images/flat/{i:03d}.png" for i in range(12))  # every image, once
    assert table["rank"].tolist() == list(range(1, 13))
    assert table.equals(table.sort_values(["score", "path"], ascending=[False, True], kind="stable"))
    kinds = write_images(workspace / "images/flat", ["disc"] * 6 + ["bar"] * 6, seed=2)  # the same files again
    assert [kinds[path] for path in table["path"]] == ["bar"] * 6 + ["disc"] * 6  # bright bars above dark discs
    assert (workspace / "reports/ranking/flat/ranked.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((workspace / "reports/ranking/flat/metrics.json").read_text())
    # 6 validation images cannot give a p-value as small as 0.05 (it takes 19): nothing flagged, and it says so
    assert metrics["images"] == 12 and metrics["calibration_images"] == 6 and metrics["flagged"] == 0
    assert metrics["threshold"] is None and "at least 19" in metrics["flag_note"]
    assert not list((workspace / "reports/ranking/flat").glob(".*.tmp"))


def test_a_classed_collection_gets_the_auroc_of_normal_against_the_rest(workspace):
    invoke("rank_train")
    output = invoke("rank_score", "--collection", "labelled")
    table = pd.read_csv(workspace / "reports/ranking/labelled/scores.csv")
    metrics = json.loads((workspace / "reports/ranking/labelled/metrics.json").read_text())
    assert list(table.columns) == ["path", "score", "rank", "p_value", "flagged", "label"]
    assert metrics["labels"] == {"bar": 8, "disc": 8} and (metrics["normal"], metrics["anomalous"]) == (8, 8)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(table["label"] != "disc", table["score"]), abs=1e-12)
    assert metrics["auroc"] > 0.9 and metrics["auroc_by_label"] == {"bar": metrics["auroc"]}
    assert f"AUROC {metrics['auroc']:.3f}" in output

    set_rank(workspace, normal_label="kitchen")  # not a label of this collection: no AUROC, and it says why
    invoke("rank_score", "--collection", "labelled")
    metrics = json.loads((workspace / "reports/ranking/labelled/metrics.json").read_text())
    assert "auroc" not in metrics and "'kitchen'" in metrics["note"]


def test_flagged_images_are_those_whose_p_value_from_the_validation_scores_is_at_most_alpha(workspace):
    set_rank(workspace, val_fraction=0.35)  # 22 validation discs: p-values down to 1/23
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["decision"]["alpha"] = 0.1
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    invoke("rank_train")
    output = invoke("rank_score", "--collection", "labelled")
    table = pd.read_csv(workspace / "reports/ranking/labelled/scores.csv")
    metrics = json.loads((workspace / "reports/ranking/labelled/metrics.json").read_text())
    calibration = np.array(json.loads((workspace / "models/ranking/dcae.calibration.json").read_text())["scores"])
    assert len(calibration) == metrics["calibration_images"] == 22
    # p = (1 + #{validation scores >= s}) / (n + 1), and flagged exactly above the threshold metrics.json states
    expected = [(1 + (calibration >= s).sum()) / 23 for s in table["score"]]
    np.testing.assert_allclose(table["p_value"], expected)
    assert (table["flagged"] == (table["p_value"] <= 0.1)).all()
    assert (table["flagged"] == (table["score"] > metrics["threshold"])).all()
    assert metrics["flagged"] == int(table["flagged"].sum()) and metrics["alpha"] == 0.1
    assert table.loc[table["label"] == "bar", "flagged"].all()  # every bright bar, far above every disc
    assert f"{metrics['flagged']} flagged at p <= 0.1" in output


class ConstantModel:
    """Scores every image alike (or NaN): the order is then the paths' alone."""

    channels = 1

    def __init__(self, value=0.0):
        self.value = value

    def score(self, images):
        return np.full(len(images), self.value)


def test_ties_are_ordered_by_path_and_nan_scores_stop(workspace):
    params = load_params()
    rank = rank_params(params)
    ranking = rank_collection(params, rank, "flat", ConstantModel())
    assert ranking.table["path"].tolist() == sorted(ranking.table["path"])
    with pytest.raises(FloatingPointError, match="rank.collections.flat: dcae gave 12 NaN"):
        rank_collection(params, rank, "flat", ConstantModel(np.nan))


def test_a_corrupt_image_is_skipped_with_a_warning_and_the_rest_ranked(workspace):
    (workspace / "images/flat/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    invoke("rank_train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        invoke("rank_score", "--collection", "flat")
    assert any("broken.png" in str(w.message) and "skipped 1 file" in str(w.message) for w in caught)
    table = pd.read_csv(workspace / "reports/ranking/flat/scores.csv")
    assert len(table) == 12 and not table["path"].str.contains("broken").any()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda ws: set_rank(ws, normal="images/missing"), ["rank.normal", "images/missing", "correct the path"]),
        (
            lambda ws: set_rank(ws, collections={"flat": "images/nowhere"}),
            ["rank.collections.flat", "images/nowhere", "correct the path"],
        ),
        (
            lambda ws: (ws / "images/labelled/empty").mkdir(),
            ["rank.collections.labelled", "images/labelled/empty", "add images or remove the folder"],
        ),
        (
            lambda ws: set_rank(ws, grid_count=7),
            ["rank.collections.flat", "rank.grid_count", "fewer than the 14", "lower rank.grid_count to at most 6"],
        ),
        (lambda ws: set_rank(ws, method="nope"), ["rank.method = 'nope' is invalid", "dcae"]),
        (lambda ws: set_rank(ws, collections={"my set": "images/flat"}), ["rank.collections", "letters, digits"]),
        (lambda ws: set_rank(ws, val_fraction=1.5), ["rank.val_fraction = 1.5"]),
    ],
    ids=[
        "missing-normal",
        "missing-collection",
        "empty-class",
        "grid-too-big",
        "unknown-method",
        "bad-name",
        "bad-fraction",
    ],
)
def test_bad_input_stops_training_before_it_starts(workspace, change, expected):
    change(workspace)
    message = failure("rank_train")
    assert all(part in message for part in expected), message
    assert not (workspace / "models").exists() and not (workspace / "data/checkpoints").exists()


def test_a_failing_collection_leaves_every_written_output_intact(workspace):
    invoke("rank_train")
    invoke("rank_score", "--collection", "flat")
    invoke("rank_score", "--collection", "labelled")
    before = {name: outputs(workspace, name) for name in ("flat", "labelled")}
    set_rank(workspace, grid_count=7)  # a grid of 14: labelled (16 images) fills it, flat (12) does not
    invoke("rank_score", "--collection", "labelled")
    before["labelled"] = outputs(workspace, "labelled")
    message = failure("rank_score", "--collection", "flat")
    assert "rank.collections.flat" in message and "rank.grid_count" in message
    assert {name: outputs(workspace, name) for name in ("flat", "labelled")} == before
    assert "'other' is not in rank.collections ['flat', 'labelled']" in failure("rank_score", "--collection", "other")


def test_a_missing_model_names_the_stage_that_trains_it(workspace):
    message = failure("rank_score", "--collection", "flat")
    assert "models/ranking/dcae.safetensors" in message and "rank_train" in message
    assert not (workspace / "reports").exists()


def test_params_errors_name_the_key():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, text in [
        ({"normal": 3}, "rank.normal = 3"),
        ({"normal": "n", "collections": {}}, "rank.collections"),
        ({"normal": "n", "collections": {"a": "b"}, "channels": 2}, "rank.channels = 2"),
        ({"normal": "n", "collections": {"a": "b"}, "channels": True}, "rank.channels = True"),
        ({"normal": "n", "collections": {"a": "b"}, "size": 2}, "unknown key(s) ['size']"),
        ({"collections": {"a": "b"}}, "rank.normal is missing"),
    ]:
        with pytest.raises(ParamsError, match=re.escape(text)):
            parse_params({**raw, "rank": section})
    params = parse_params({**raw, "rank": {"normal": "n", "collections": {"a": "b"}, "normal_label": 1}})
    assert rank_params(params).normal_label == "1"  # a YAML number names the subfolder "1"
    with pytest.raises(ParamsError, match="rank is missing"):
        rank_params(parse_params({k: v for k, v in raw.items() if k != "rank"}))


def test_the_demo_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("rank_demo")
    demo = tmp_path / "data/demo/rank"
    assert len(list((demo / "normal").iterdir())) == 300
    assert sorted(p.name for p in (demo / "mixed").iterdir()) == [str(d) for d in range(10)]
    assert all(len(list(p.iterdir())) == 20 for p in (demo / "mixed").iterdir())
    assert len(list((demo / "flat").iterdir())) == 40 and all(p.is_file() for p in (demo / "flat").iterdir())
    first = {p.relative_to(demo): p.read_bytes() for p in demo.rglob("*.png")}
    invoke("rank_demo")
    assert {p.relative_to(demo): p.read_bytes() for p in demo.rglob("*.png")} == first  # the same bytes every run


def test_an_interrupted_or_repeated_training_resumes_from_its_checkpoint(workspace):
    invoke("rank_train")
    model = workspace / "models/ranking/dcae.safetensors"
    first = model.read_bytes()
    model.unlink()  # as DVC does to outputs before a re-run
    output = invoke("rank_train")
    assert "0/6" not in output and model.read_bytes() == first  # no epoch ran again, the same model
    write_images(workspace / "images/normal", ["disc"] * 64, seed=5)  # other images under the same names
    assert "0/6" in invoke("rank_train")  # trained from the first epoch
