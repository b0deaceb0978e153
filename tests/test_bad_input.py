"""A sweep of bad params and bad files: each stops its stage early with one message that names the
problem (the key or file) and what to do, before anything is written.

Every case starts from a copy of one prepared workspace (tiny data, DCAE trained on
one-class-normal), breaks one thing, runs one stage in-process and checks the error: a
`StageError` (which the stage prints alone, without a traceback: see the last test) whose message
matches. The stage's existing outputs are left as they were.
"""

import json
import pickle
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from ganad.errors import StageError

from conftest import ROOT, make_tiny_mnist, stage

MODEL = "models/mnist/one_class_normal/dcae/seed0/class0.safetensors"
SCORES = "data/scores/mnist/one_class_normal/dcae.csv"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Fetched, split, prepared, configured, trained and scored once; every case works on a copy."""
    folder = tmp_path_factory.mktemp("prepared")
    make_tiny_mnist(300, 100).save(folder / "tiny.npz")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["run"].update(classes=[0, 3], methods=["dcae"], seeds=[0], audit_protocols=[])
    params["executor"] = {"kind": "serial", "threads": 1}
    params["brain"]["methods"] = ["dcae"]
    params["data"]["mnist"] = {"source": "npz", "npz_path": "tiny.npz", "download": False}
    params["model"]["method"] = "dcae"
    params["methods"]["dcae"] = {"latent_dim": "auto", "width": 8, "epochs": 1, "batch_size": 32, "lr": 0.002}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name, *args in [
            ("fetch", "--dataset", "mnist"),
            ("split", "--dataset", "mnist", "--protocol", "one_class_normal"),
            ("preprocess", "--dataset", "mnist"),
            ("configure", "--dataset", "mnist"),
            ("train", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae"),
            ("score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae"),
        ]:
            result = CliRunner().invoke(stage(name), args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    return folder


# --- ways to break one thing -------------------------------------------------------------------------


def param(*path, value):
    def apply(folder):
        params = yaml.safe_load((folder / "params.yaml").read_text())
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        (folder / "params.yaml").write_text(yaml.safe_dump(params))

    return apply


DELETE = object()


def both(*breakages):
    def apply(folder):
        for breakage in breakages:
            breakage(folder)

    return apply


def write(relative, content):
    def apply(folder):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(path) if callable(content) else content)

    return apply


def remove(relative):
    def apply(folder):
        path = folder / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return apply


def npz(**arrays):
    def apply(folder):
        np.savez(folder / "tiny.npz", **arrays)

    return apply


def pickled_npz(folder):
    np.savez(folder / "tiny.npz", x_train=np.array([object()], dtype=object))


def truncated(path):
    return path.read_bytes()[:200]


def a_pickle(path):
    return pickle.dumps({"weights": [1, 2, 3]})


def config_value(key, value):
    def apply(folder):
        path = folder / "data/config/mnist/dcae.json"
        config = json.loads(path.read_text())
        config[key] = value
        path.write_text(json.dumps(config))

    return apply


def images_folder(kind):
    """data.photos, a folder of images, broken in one way: missing, holding only files that do not decode, or
    holding one class (which fetch takes, as the rank stages can use it, and split refuses)."""

    def apply(folder):
        root = folder / "photos"
        if kind != "missing":
            (root / "cats").mkdir(parents=True)
            for i in range(4):
                image = root / "cats" / f"{i}.png"
                if kind == "undecodable":
                    image.write_bytes(b"")
                else:
                    Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(image)
        params = yaml.safe_load((folder / "params.yaml").read_text())
        params["data"]["photos"] = {"source": "folder", "root": str(root)}
        params["run"].update(datasets=["photos"], classes="all")
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
        if kind == "one class":
            result = CliRunner().invoke(stage(FETCH_PHOTOS[0]), list(FETCH_PHOTOS[1:]), catch_exceptions=False)
            assert result.exit_code == 0, result.output

    return apply


FETCH = ("fetch", "--dataset", "mnist")
FETCH_PHOTOS = ("fetch", "--dataset", "photos")
SPLIT = ("split", "--dataset", "mnist", "--protocol", "one_class_normal")
PREPROCESS = ("preprocess", "--dataset", "mnist")
CONFIGURE = ("configure", "--dataset", "mnist")
TRAIN = ("train", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
SCORE = ("score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
EVALUATE = ("evaluate", "--dataset", "mnist", "--protocol", "one_class_normal")

CASES = [
    # params.yaml itself
    ("params file missing", remove("params.yaml"), FETCH, r"'params.yaml' not found; run from the repository root"),
    ("params not YAML", write("params.yaml", b"run: [unclosed"), FETCH, r"'params.yaml' is not valid YAML"),
    ("params not a mapping", write("params.yaml", b"- a\n- list\n"), FETCH, r"params.yaml = .* mapping"),
    ("unknown top-level key", param("sead", value=1), FETCH, r"unknown top-level key\(s\) \['sead'\]"),
    ("misspelt run key", param("run", "method", value=["dcae"]), FETCH, r"run: unknown key\(s\) \['method'\]"),
    ("unknown method", param("run", "methods", value=["dcae", "deep_magic"]), FETCH, r"run.methods = 'deep_magic'"),
    ("main model not run", param("model", "method", value="vae"), FETCH, r"model.method = 'vae'.*add it there"),
    ("negative latent size", param("model", "latent_dim", value=-8), FETCH, r"model.latent_dim = -8"),
    ("negative split seed", param("seed", value=-1), FETCH, r"seed = -1"),
    ("no training seeds", param("run", "seeds", value=[]), FETCH, r"run.seeds = \[\]"),
    ("repeated seed", param("run", "seeds", value=[2, 2]), FETCH, r"run.seeds = \[2, 2\]"),
    ("negative test size", param("split", "test_size", value=-5), FETCH, r"split.test_size = -5"),
    (
        "a boolean as a count",
        param("split", "test_size", value=True),
        FETCH,
        r"split.test_size = True is invalid: must be an integer > 0",
    ),
    ("bad brain setting", param("brain", "clip", value=-1.0), FETCH, r"brain.clip = -1.0 is invalid: must be"),
    ("bad rank setting", param("rank", "grid_count", value=0), FETCH, r"rank.grid_count = 0 is invalid: must be"),
    ("train fraction over 1", param("split", "train_fraction", value=1.5), FETCH, r"split.train_fraction = 1.5"),
    ("the removed leaky flag", param("split", "leaky", value=True), FETCH, r"split.leaky is no longer a setting"),
    ("the removed workers key", param("run", "workers", value=2), FETCH, r"write executor.jobs: 2 instead"),
    ("unknown executor", param("executor", "kind", value="pbs"), FETCH, r"executor.kind = 'pbs'"),
    ("zero jobs", param("executor", "jobs", value=0), FETCH, r"executor.jobs = 0"),
    (
        "bad slurm option",
        param("executor", "slurm", value={"cpus_per_job": -1}),
        FETCH,
        r"executor.slurm.cpus_per_job = -1",
    ),
    ("GPU asked for, none here", param("device", value="cuda"), TRAIN, r"device: 'cuda' was asked for but no CUDA"),
    ("unknown device", param("device", value="tpu"), FETCH, r"device = 'tpu'"),
    (
        "audit without its protocol",
        both(
            param("run", "protocols", value=["one_class_normal"]),
            param("run", "audit_protocols", value=["leave_one_class_out_leaky"]),
        ),
        FETCH,
        r"run.audit_protocols = 'leave_one_class_out_leaky'.*add leave_one_class_out",
    ),
    ("figure class not run", param("report", "figure_class", value=7), FETCH, r"report.figure_class = 7"),
    ("class beyond the data", param("run", "classes", value=[0, 42]), SPLIT, r"run.classes = 42"),
    ("negative epochs", param("methods", "dcae", "epochs", value=-2), CONFIGURE, r"methods.dcae.epochs = -2"),
    ("zero learning rate", param("methods", "dcae", "lr", value=0.0), CONFIGURE, r"methods.dcae.lr = 0.0"),
    ("unknown method key", param("methods", "dcae", "epochz", value=3), CONFIGURE, r"unknown key.*epochz"),
    # data files
    (
        "npz source without a path",
        param("data", "mnist", value={"source": "npz"}),
        FETCH,
        r"data.mnist.npz_path is missing",
    ),
    ("npz file missing", remove("tiny.npz"), FETCH, r"tiny.npz"),
    ("npz file corrupt", write("tiny.npz", b"PK\x03\x04 not really a zip" * 10), FETCH, r"tiny.npz"),
    ("npz without images", npz(y_train=np.zeros(3)), FETCH, r"x_train"),
    ("npz holding pickled objects", pickled_npz, FETCH, r"tiny.npz"),
    (
        "npz images and labels disagree",
        npz(
            x_train=np.zeros((5, 28, 28), np.uint8),
            y_train=np.zeros(4, np.int64),
            x_test=np.zeros((2, 28, 28), np.uint8),
            y_test=np.zeros(2, np.int64),
        ),
        FETCH,
        r"x_train|y_train",
    ),
    ("image folder missing", images_folder("missing"), FETCH_PHOTOS, r"photos"),
    (
        "image folder of undecodable files",
        images_folder("undecodable"),
        FETCH_PHOTOS,
        r"photos/cats' holds no decodable image",
    ),
    (
        "image folder of one class",
        images_folder("one class"),
        ("split", "--dataset", "photos", "--protocol", "one_class_normal"),
        r"no anomalous images.*`rank` stages",
    ),
    ("raw data missing", remove("data/raw/mnist.npz"), SPLIT, r"data/raw/mnist.npz"),
    ("split file missing", remove("data/splits/mnist/one_class_normal.npz"), TRAIN, r"one_class_normal.npz"),
    ("method config missing", remove("data/config/mnist/dcae.json"), TRAIN, r"dcae.json' not found; run `dvc repro`"),
    ("method config edited badly", config_value("batch_size", 0), TRAIN, r"batch_size = 0"),
    # model files
    ("model file truncated", write(MODEL, truncated), SCORE, r"class0.safetensors' is not a ganad model.*dvc repro"),
    ("model file a pickle", write(MODEL, a_pickle), SCORE, r"class0.safetensors' is not a ganad model"),
    ("model file missing", remove(MODEL), SCORE, r"class0.safetensors"),
    ("score file missing", remove(SCORES), EVALUATE, r"dcae.csv"),
]


@pytest.mark.parametrize("name, breakage, command, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_with_one_message(prepared, tmp_path, monkeypatch, name, breakage, command, message):
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    monkeypatch.chdir(folder)
    breakage(folder)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(stage(command[0]), list(command[1:]))
    # the one warning bad input may add is the list of image files that were skipped as undecodable
    assert all("could not be decoded" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert result.exit_code != 0, f"{name}: the stage went on\n{result.output}"
    assert isinstance(result.exception, StageError), f"{name}: {type(result.exception).__name__}: {result.exception}"
    assert re.search(message, str(result.exception)), str(result.exception)
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert {p: t for p, t in after.items() if p in before} == before, f"{name}: an existing file was rewritten"


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_a_stage_prints_the_message_alone_and_exits_with_status_2(prepared, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    param("executor", "kind", value="pbs")(folder)
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages/train.py"), *TRAIN[1:]], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR: executor.kind = 'pbs' is invalid") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
