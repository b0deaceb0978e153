"""A sweep of bad params and bad files: each stops its stage early with one message that names the
problem (the key or file) and what to do, before anything is written.

Every case starts from a copy of one prepared workspace (tiny data, DCAE trained on
one-class-normal), breaks one thing, runs one stage in-process and checks the error: a
`StageError` (which the stage prints alone, without a traceback: see the last test) whose message
matches, with no traceback in it. The stage's existing outputs are left as they were (modification time and
md5 of every file), and no temporary file is left. Classes and counts: docs/bad_input.md. Below the table: a
stage stopped by a file-size limit while it writes (killed, or as on a full disk) keeps its previous
outputs, and a failed job prints its message without the traceback.
"""

import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
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
    """Fetched, split, prepared, configured, trained, scored, evaluated and reported once; every case works on a
    copy."""
    folder = tmp_path_factory.mktemp("prepared")
    make_tiny_mnist(300, 100).save(folder / "tiny.npz")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["run"].update(classes=[0, 3], methods=["dcae"], seeds=[0], audit_protocols=[])
    params["run"]["protocols"] = ["one_class_normal"]
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
            ("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae"),
            ("evaluate", "--dataset", "mnist", "--protocol", "one_class_normal"),
            ("report",),
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


def tiny_npz(**changes):
    """A valid little MNIST-shaped archive (40 training and 20 test images of the 10 digits) with some arrays
    replaced."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "y_train": np.arange(40) % 10,
        "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_test": np.arange(20) % 10,
    }
    return npz(**{**arrays, **changes})


def fetched(folder):
    """The fetch stage run on the archive as it is now (which it accepts), for a later stage to refuse."""
    result = CliRunner().invoke(stage(FETCH[0]), list(FETCH[1:]), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def npz_at(relative, **arrays):
    def apply(folder):
        with open(folder / relative, "wb") as handle:
            np.savez(handle, **arrays)

    return apply


def npy_at(relative, array):
    def apply(folder):
        with open(folder / relative, "wb") as handle:
            np.save(handle, array)

    return apply


def cut(n):
    return lambda path: path.read_bytes()[:n]


def scores_edit(edit):
    def apply(folder):
        path = folder / SCORES
        table = pd.read_csv(path)
        edit(table)
        table.to_csv(path, index=False)

    return apply


def nan_score(table):
    table.loc[3, "score"] = float("nan")


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
    """data.photos, a folder of images, broken in one way: missing, holding only files that do not decode (empty
    files, GIFs, floats outside [0, 1], 32-bit integers beyond 255), or holding one class (which fetch takes, as
    the rank stages can use it, and split refuses)."""

    def apply(folder):
        root = folder / "photos"
        if kind != "missing":
            (root / "cats").mkdir(parents=True)
            for i in range(4):
                image = root / "cats" / f"{i}.png"
                if kind == "undecodable":
                    image.write_bytes(b"")
                elif kind == "gif":
                    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 200)]
                    frames[0].save(image.with_suffix(".gif"), save_all=True, append_images=frames[1:])
                elif kind == "float beyond 1":
                    Image.fromarray(np.full((8, 8), 3.5 + i, np.float32)).save(image.with_suffix(".tif"))
                elif kind == "int32 beyond 255":
                    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(image.with_suffix(".tif"))
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
TRAIN = ("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
SCORE = ("score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
EVALUATE = ("evaluate", "--dataset", "mnist", "--protocol", "one_class_normal")
REPORT = ("report",)
SPLITS = "data/splits/mnist/one_class_normal.npz"
PREPARED = "data/prepared/mnist"
METHOD_CONFIG = "data/config/mnist/dcae.json"
METRICS = "reports/metrics/mnist_one_class_normal.json"
CLASS_METRICS = "reports/metrics/classes/mnist_one_class_normal.csv"

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
    (
        "method config missing",
        remove("data/config/mnist/dcae.json"),
        TRAIN,
        r"dcae.json' not found; rebuild it with `dvc repro -f -s configure@mnist`",
    ),
    ("method config edited badly", config_value("batch_size", 0), TRAIN, r"batch_size = 0"),
    # model files
    ("model file truncated", write(MODEL, truncated), SCORE, r"class0.safetensors' is not a ganad model.*dvc repro"),
    ("model file a pickle", write(MODEL, a_pickle), SCORE, r"class0.safetensors' is not a ganad model"),
    ("model file missing", remove(MODEL), SCORE, r"class0.safetensors"),
    ("score file missing", remove(SCORES), EVALUATE, r"dcae.csv"),
    # --- params --------------------------------------------------------------------------------
    (
        "params not UTF-8",
        write("params.yaml", "seed: 0\nrun: {datasets: [café]}\n".encode("latin-1")),
        FETCH,
        r"'params.yaml' is not UTF-8 text.*save it as UTF-8",
    ),
    ("params with a NUL byte", write("params.yaml", b"seed: 0\x00\n"), FETCH, r"params.yaml"),
    (
        "dataset named brain",
        param("data", "brain", value={"source": "npz", "npz_path": "tiny.npz"}),
        FETCH,
        r"data.brain is a reserved name.*data/prepared/brain",
    ),
    ("training seed beyond 2**32", param("run", "seeds", value=[2**64]), FETCH, r"run.seeds.*18446744073709551616"),
    ("split seed beyond 2**32", param("seed", value=2**40), FETCH, r"seed = 1099511627776 is invalid"),
    (
        "huge network width",
        param("methods", "dcae", "width", value=1000000),
        CONFIGURE,
        r"methods.dcae.width = 1000000 is invalid: must be at most 1024",
    ),
    (
        "huge main latent size",
        param("model", "latent_dim", value=10**7),
        CONFIGURE,
        r"model.latent_dim = 10000000 is invalid: must be at most 16384",
    ),
    (
        "huge latent size of another method",
        both(param("run", "methods", value=["dcae", "vae"]), param("methods", "vae", value={"latent_dim": 10**6})),
        CONFIGURE,
        r"methods.vae.latent_dim = 1000000 is invalid",
    ),
    (
        "best_val with no validation images",
        both(param("split", "val_fraction", value=0.0), param("methods", "dcae", "select", value="best_val")),
        CONFIGURE,
        r"methods.dcae.select = 'best_val' is invalid with split.val_fraction = 0",
    ),
    ("unknown select", param("methods", "dcae", "select", value="best"), CONFIGURE, r"methods.dcae.select = 'best'"),
    ("unknown --dataset to fetch", ("fetch", "--dataset", "mnits"), None, r"--dataset 'mnits' is not declared.*mnist"),
    (
        "unknown --dataset to preprocess",
        ("preprocess", "--dataset", "mnits"),
        None,
        r"--dataset 'mnits' is not declared",
    ),
    (
        "unknown --dataset to split",
        ("split", "--dataset", "mnits", "--protocol", "one_class_normal"),
        None,
        r"--dataset 'mnits' is not declared",
    ),
    (
        "unknown --dataset to train",
        ("train_score", "--dataset", "cifar", "--protocol", "one_class_normal", "--method", "dcae"),
        None,
        r"--dataset 'cifar' is not declared",
    ),
    (
        "unknown --protocol to split",
        ("split", "--dataset", "mnist", "--protocol", "leave_one_out"),
        None,
        r"--protocol 'leave_one_out' is unknown for mnist; known: \['leave_one_class_out'",
    ),
    (
        "unknown --protocol to score",
        ("score", "--dataset", "mnist", "--protocol", "ocn", "--method", "dcae"),
        None,
        r"--protocol 'ocn' is unknown",
    ),
    (
        "brain protocol on an image dataset",
        ("evaluate", "--dataset", "mnist", "--protocol", "healthy_to_tumour"),
        None,
        r"--protocol 'healthy_to_tumour' is unknown for mnist",
    ),
    (
        "--method not run",
        ("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "vae"),
        None,
        r"--method 'vae' is not in run.methods \['dcae'\]",
    ),
    # --- the npz a dataset comes from ----------------------------------------------------------
    ("string labels", tiny_npz(y_train=np.array(list("abcd") * 10)), FETCH, r"y_train holds <U1 values.*classes"),
    (
        "a NaN label",
        tiny_npz(y_train=np.r_[np.arange(39) % 10, np.nan]),
        FETCH,
        r"y_train holds 1 label\(s\) that are not whole numbers \(e.g. nan at position 39\)",
    ),
    ("fractional labels", tiny_npz(y_test=np.full(20, 0.5)), FETCH, r"y_test holds 20 label\(s\) that are not whole"),
    (
        "one-hot labels",
        tiny_npz(y_train=np.eye(10)[np.arange(40) % 10]),
        FETCH,
        r"y_train has shape \(40, 10\), expected \(40,\).*one-hot.*argmax",
    ),
    ("labels of another length", tiny_npz(y_train=np.zeros(7, np.int64)), FETCH, r"y_train has shape \(7,\)"),
    ("negative labels", tiny_npz(y_train=np.arange(40) % 10 - 1), FETCH, r"y_train labels span -1..8"),
    (
        "0x0 images",
        tiny_npz(x_train=np.zeros((40, 0, 0), np.uint8), x_test=np.zeros((20, 0, 0), np.uint8)),
        FETCH,
        r"x_train has images of shape \(0, 0\)",
    ),
    ("float images", tiny_npz(x_train=np.zeros((40, 28, 28), np.float32)), FETCH, r"x_train has dtype float32"),
    ("images of five dimensions", tiny_npz(x_train=np.zeros((40, 28, 28, 3, 2), np.uint8)), FETCH, r"x_train"),
    (
        "duplicate class names",
        both(tiny_npz(classes=np.array([*"abcdefghi", "a"]))),
        FETCH,
        r"class names \['a'\] appear more than once",
    ),
    (
        "no training images",
        tiny_npz(x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0, np.int64)),
        FETCH,
        r"no training images",
    ),
    ("npz file empty", write("tiny.npz", b""), FETCH, r"tiny.npz"),
    ("npz a text file", write("tiny.npz", b"x_train,y_train\n1,2\n"), FETCH, r"tiny.npz"),
    (
        "validation takes every training image",
        param("split", "val_fraction", value=0.99),
        SPLIT,
        r"class 0 \(0\) has no training images: all \d+ of its normal training images went to validation; "
        r"lower split.val_fraction",
    ),
    (
        "an empty test set",
        both(tiny_npz(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.int64)), fetched),
        SPLIT,
        r"its test split is empty.*give the dataset test images",
    ),
    (
        "raw npz of string labels",
        npz_at(
            "data/raw/mnist.npz",
            x_train=np.zeros((4, 28, 28), np.uint8),
            y_train=np.array(list("abab")),
            x_test=np.zeros((2, 28, 28), np.uint8),
            y_test=np.array([0, 1]),
        ),
        PREPROCESS,
        r"y_train holds <U1 values",
    ),
    (
        "raw npz missing, for preprocess",
        remove("data/raw/mnist.npz"),
        PREPROCESS,
        r"data/raw/mnist.npz' not found; rebuild it with `dvc repro -f -s fetch@mnist`",
    ),
    # --- image folders -------------------------------------------------------------------------
    ("image folder of GIFs", images_folder("gif"), FETCH_PHOTOS, r"photos/cats' holds no decodable image"),
    (
        "image folder of floats beyond 1",
        images_folder("float beyond 1"),
        FETCH_PHOTOS,
        r"photos/cats' holds no decodable image",
    ),
    (
        "image folder of 32-bit integers",
        images_folder("int32 beyond 255"),
        FETCH_PHOTOS,
        r"photos/cats' holds no decodable image",
    ),
    # --- the files stages pass to each other -----------------------------------------------------
    (
        "raw npz truncated",
        write("data/raw/mnist.npz", cut(300)),
        SPLIT,
        r"data/raw/mnist.npz' is not a readable npz archive",
    ),
    (
        "meta.json missing",
        remove(f"{PREPARED}/meta.json"),
        CONFIGURE,
        r"meta.json' not found; rebuild it with `dvc repro -f -s preprocess@mnist`",
    ),
    (
        "meta.json not JSON",
        write(f"{PREPARED}/meta.json", b'{"channels": '),
        CONFIGURE,
        r"meta.json' is not valid JSON.*`dvc repro -f -s preprocess@mnist`",
    ),
    (
        "meta.json not UTF-8",
        write(f"{PREPARED}/meta.json", b'{"channels": 1, "x": "\xff"}'),
        CONFIGURE,
        r"meta.json' is not valid JSON",
    ),
    (
        "meta.json a list",
        write(f"{PREPARED}/meta.json", b"[1, 2]"),
        CONFIGURE,
        r"meta.json' lacks the prepared data's channel count.*preprocess@mnist",
    ),
    ("meta.json missing for train", remove(f"{PREPARED}/meta.json"), TRAIN, r"meta.json' not found"),
    (
        "method config not JSON",
        write(METHOD_CONFIG, b"{'lr': 0.1}"),
        TRAIN,
        r"dcae.json' is not valid JSON.*`dvc repro -f -s configure@mnist`",
    ),
    ("method config a list", write(METHOD_CONFIG, b"[]"), TRAIN, r"dcae.json' holds list, not a method's settings"),
    ("method config empty", write(METHOD_CONFIG, b""), TRAIN, r"dcae.json' is not valid JSON"),
    ("method config of unknown keys", config_value("widht", 8), TRAIN, r"unknown key.*widht"),
    (
        "splits cut to 300 bytes",
        write(SPLITS, cut(300)),
        TRAIN,
        r"one_class_normal.npz' is not a readable .npz archive.*`dvc repro -f -s split@mnist-one_class_normal`",
    ),
    ("splits cut, for score", write(SPLITS, cut(300)), SCORE, r"one_class_normal.npz' is not a readable .npz"),
    ("splits not a zip", write(SPLITS, b"train_0,1,2\n"), TRAIN, r"one_class_normal.npz' is not an .npz archive"),
    (
        "splits of float arrays",
        npz_at(SPLITS, train_0=np.zeros(3), val_0=np.zeros(1), test_0=np.zeros(2)),
        TRAIN,
        r"holds 'train_0' \(float64, shape \(3,\)\), not a class's index array",
    ),
    ("splits holding strings", npz_at(SPLITS, train_0=np.array(["a"])), TRAIN, r"not a class's index array"),
    ("splits without val", npz_at(SPLITS, train_0=np.arange(3)), TRAIN, r"holds no split for class 0"),
    (
        "splits beyond the images",
        npz_at(SPLITS, train_0=np.arange(3), val_0=np.arange(1), test_0=np.array([10**6])),
        SCORE,
        r"do not fit the split",
    ),
    (
        "images.npy truncated",
        write(f"{PREPARED}/images.npy", cut(1000)),
        TRAIN,
        r"images.npy' is not a readable .npy array.*`dvc repro -f -s preprocess@mnist`",
    ),
    ("images.npy truncated, for score", write(f"{PREPARED}/images.npy", cut(1000)), SCORE, r"images.npy'"),
    (
        "images.npy not npy",
        write(f"{PREPARED}/images.npy", b"\x89PNG not an array"),
        TRAIN,
        r"images.npy' is not a .npy array",
    ),
    (
        "images.npy of objects",
        npy_at(f"{PREPARED}/images.npy", np.array([{"a": 1}], dtype=object)),
        TRAIN,
        r"images.npy' is not a readable .npy array",
    ),
    ("labels.npy missing", remove(f"{PREPARED}/labels.npy"), TRAIN, r"labels.npy' not found"),
    (
        "labels.npy shorter than the images",
        npy_at(f"{PREPARED}/labels.npy", np.zeros(3, np.int64)),
        SCORE,
        r"holds 400 images and 3 labels",
    ),
    ("model file empty", write(MODEL, b""), SCORE, r"class0.safetensors' is not a ganad model"),
    (
        "scores cut inside a quote",
        write(SCORES, lambda p: p.read_bytes()[:300].rsplit(b"\n", 1)[0] + b'\n0,0,5,"0.5'),
        EVALUATE,
        r"dcae.csv' is not a readable CSV table.*`dvc repro -f -s train_score@mnist-one_class_normal-dcae`",
    ),
    (
        "scores of other columns",
        write(SCORES, b"image,score\na.png,0.5\n"),
        EVALUATE,
        r"dcae.csv' has columns \['image', 'score'\], expected \['class'",
    ),
    ("scores with a NaN score", scores_edit(nan_score), EVALUATE, r"dcae.csv': column 'score' holds nan in row 5"),
    (
        "scores with a text label",
        scores_edit(lambda t: t.__setitem__("label", "x")),
        EVALUATE,
        r"column 'label' holds 'x'",
    ),
    ("scores empty", write(SCORES, b""), EVALUATE, r"dcae.csv' is not a readable CSV table"),
    (
        "scores not UTF-8",
        write(SCORES, lambda p: p.read_bytes()[:200] + b"\xff\xfe\n"),
        EVALUATE,
        r"dcae.csv' (is not a readable CSV|has columns|: column)",
    ),
    (
        "headline metrics missing, for report",
        remove(METRICS),
        REPORT,
        r"one_class_normal.json' not found; rebuild it with `dvc repro -f -s evaluate@mnist-one_class_normal`",
    ),
    (
        "headline metrics a list",
        write(METRICS, b"[1, 2]\n"),
        REPORT,
        r"one_class_normal.json' is not a JSON object; rebuild it with `dvc repro -f -s evaluate@mnist",
    ),
    (
        "class metrics cut inside a quote",
        write(CLASS_METRICS, lambda p: p.read_bytes()[:40] + b'"dcae'),
        REPORT,
        r"classes/mnist_one_class_normal.csv' (is not a readable CSV table|has columns).*`dvc repro -f -s evaluate@",
    ),
    # --- training that diverges ------------------------------------------------------------------
    (
        "validation score NaN",
        both(config_value("lr", 1e30), config_value("batch_size", 1000)),
        TRAIN,
        r"job \(0, 0\) \(train_class mnist one_class_normal dcae\) failed: the validation score became (nan|inf|-inf) "
        r"at epoch 0",
    ),
]


def md5s(folder):
    return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def nothing(folder):
    pass


@pytest.mark.parametrize("name, breakage, command, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_with_one_message(prepared, tmp_path, monkeypatch, name, breakage, command, message):
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    monkeypatch.chdir(folder)
    if command is None:  # a bad command line: `breakage` is the command
        breakage, command = nothing, breakage
    breakage(folder)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    digests = md5s(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(stage(command[0]), list(command[1:]))
    # the one warning bad input may add is the list of image files that were skipped as undecodable
    assert all("could not be decoded" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert result.exit_code != 0, f"{name}: the stage went on\n{result.output}"
    assert isinstance(result.exception, StageError), f"{name}: {type(result.exception).__name__}: {result.exception}"
    assert re.search(message, str(result.exception)), str(result.exception)
    assert "Traceback" not in str(result.exception), f"{name}: a traceback in the message"
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert {p: t for p, t in after.items() if p in before} == before, f"{name}: an existing file was rewritten"
    assert {p: d for p, d in md5s(folder).items() if p in digests} == digests, f"{name}: an existing file changed"
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name], f"{name}: a temporary file was left"


def test_there_are_at_least_a_hundred_cases_and_the_docs_count_them():
    assert len(CASES) >= 100
    rows = re.findall(r"^\| ([^|*]+?) \| (\d+) \|", (ROOT / "docs/bad_input.md").read_text(), re.MULTILINE)
    total = re.search(r"^\| \*\*total\*\* \| \*\*(\d+)\*\* \|", (ROOT / "docs/bad_input.md").read_text(), re.M)
    assert sum(int(n) for _, n in rows) == int(total.group(1)) == len(CASES), rows


def test_a_stage_prints_the_message_alone_and_exits_with_status_2(prepared, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    param("executor", "kind", value="pbs")(folder)
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages/train_score.py"), *TRAIN[1:]], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ERROR: executor.kind = 'pbs' is invalid") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- nothing half-written: a stage stopped while it writes leaves its previous outputs ---------------------

WRITERS = {
    "fetch": (FETCH, ["data/raw/mnist.npz"], 100_000),
    "split": (SPLIT, [SPLITS], 1_000),
    "preprocess": (PREPROCESS, [f"{PREPARED}/images.npy", f"{PREPARED}/labels.npy", f"{PREPARED}/meta.json"], 100_000),
    # configure writes only the files whose content changes: a new learning rate makes it write
    "configure": (CONFIGURE, [METHOD_CONFIG], 100, param("methods", "dcae", "lr", value=0.001)),
    "train_score": (TRAIN, [MODEL, SCORES, "reports/curves/mnist_one_class_normal_dcae.csv"], 1_000),
    "evaluate": (EVALUATE, [CLASS_METRICS, METRICS], 100),
    "report": (REPORT, ["reports/results.md", "reports/tables/mnist_one_class_normal.csv"], 1_000),
}
# a stage run with a file-size limit: `killed` restores SIGXFSZ's default (Python ignores it), so the process dies
# at the write that crosses the limit, as with a kill; otherwise the write fails as on a full disk
LIMITED = (
    "import resource, runpy, signal, sys; script, limit, how = sys.argv[1:4]; del sys.argv[1:4]; "
    "sys.argv[0] = script; limit = int(limit); "
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL if how == 'killed' else signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); runpy.run_path(script, run_name='__main__')"
)


@pytest.mark.parametrize("how", ["killed", "disk full"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_stage_stopped_while_writing_leaves_its_previous_outputs(prepared, tmp_path, kind, how):
    command, outputs, limit, *change = WRITERS[kind]
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    for apply in change:
        apply(folder)
    before = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in outputs}
    assert all((folder / name).stat().st_size > limit for name in outputs[:1])  # the first output crosses it
    script = str(ROOT / f"stages/{command[0]}.py")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, script, str(limit), how.split()[0], *command[1:]],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
    )
    if how == "killed":
        assert result.returncode == -signal.SIGXFSZ, result.stderr
    else:
        assert result.returncode == 2, result.stderr
        assert "could not be written" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not [p for p in folder.rglob("*") if ".tmp-" in p.name]
    after = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in outputs}
    assert after == before, f"{kind} {how}: its previous outputs changed"
    # run again without the limit: the same files (new ones where params changed), nothing left of the stopped run
    rerun = subprocess.run([sys.executable, script, *command[1:]], cwd=folder, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    again = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in outputs}
    assert (again != before) if change else (again == before)
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name]


def test_a_failed_job_prints_its_message_without_the_traceback_unless_debugging(prepared, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(prepared, folder)
    both(config_value("lr", 1e30), config_value("batch_size", 1000))(folder)
    curves = sorted((folder / "reports/training").rglob("*"))
    digests = md5s(folder / "reports/training")
    command = [sys.executable, str(ROOT / "stages/train_score.py"), *TRAIN[1:]]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("ERROR: job (0, 0) (train_class mnist one_class_normal dcae) failed: the validation")
    # the failed retrain left the curves of the model that is still there
    assert sorted((folder / "reports/training").rglob("*")) == curves
    assert md5s(folder / "reports/training") == digests
    debug = subprocess.run(command, cwd=folder, capture_output=True, text=True, env={**os.environ, "GANAD_DEBUG": "1"})
    assert debug.returncode == 2 and "--- the job's traceback ---" in debug.stderr, debug.stderr


def test_a_torchvision_set_that_is_not_image_classification_is_refused_by_name():
    from ganad.data.sources import _as_arrays
    from ganad.errors import DataError

    class Cityscapes:  # items are (image, segmentation target), as torchvision's Cityscapes gives them
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return Image.fromarray(np.zeros((4, 4), np.uint8)), Image.fromarray(np.zeros((4, 4), np.uint8))

    with pytest.raises(DataError, match=r"torchvision's Cityscapes is not an image classification set"):
        _as_arrays(Cityscapes())


def test_a_nifti_header_declaring_4000_cubed_voxels_is_refused_before_reading(tmp_path):
    import nibabel as nib

    from ganad.errors import DataError
    from ganad.studies.brain.volumes import geometry, load_volume

    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((4000, 4000, 4000))
    path = tmp_path / "huge.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)  # the header, its extension flag, 32 voxels
    for read in (geometry, load_volume):
        with pytest.raises(DataError, match=r"huge.nii' declares 4000x4000x4000 voxels, more than a brain MRI"):
            read(path)
