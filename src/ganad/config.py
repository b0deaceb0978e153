"""params.yaml as plain dataclasses, validated before any stage does work.

Every stage calls `load_params()`, which checks every key and value outside the
method sections, and refuses unknown keys at every level, with a message that
names the key, the value and what is allowed. It imports nothing heavy (no torch,
scikit-learn or numba). A method's section is checked against its `Config` by
`Params.method_config`, which the `configure` stage runs for every method before
any training, and whose result (with `auto` latent sizes resolved) the method's
train and score stages read from `data/config/<dataset>/<method>.json`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import re

from .checks import (ParamsError, build_config, flag, is_int, non_negative_int, optional_text,
                     positive_int, refuse_unknown, rule)
from .executors import ExecutorParams, parse_executor
from .methods import REGISTRY, config_class
from .protocols import AUDIT_PROTOCOLS, BRAIN_DATASET, LEAKY_PROTOCOL, PROTOCOLS
from .sources import BUILTINS, SOURCES

# Latent sizes the ADAE paper uses (Appendix A), by channel count: MNIST-like grey images 32, colour
# images (CIFAR-10) 128; `auto` resolves to these for any dataset.
PAPER_LATENT_DIM = {1: 32, 3: 128}
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a path part and a DVC matrix key
BRAIN_DEFAULT_METHODS = ["adae", "dcae", "vae", "cevae"]  # ADAE Fig. 3's bars; ganad.brain.BrainParams.methods
TOP_LEVEL = ("seed", "device", "run", "executor", "data", "split", "report", "model", "methods", "rank", "brain")


@dataclass
class DatasetParams:
    """data.<name>: where a dataset's images come from (ganad.sources); each source reads its own keys."""

    source: str = rule("embedded", lambda v: v in SOURCES, f"one of {list(SOURCES)}")
    npz_path: str | None = optional_text(None)  # npz
    download: bool = flag(False)  # torchvision
    mirror: str | None = optional_text(None)  # torchvision: URL prefix of a local copy of its files
    torchvision: str | None = optional_text(None)  # torchvision: the class (KMNIST, SVHN...); default by name
    root: str | None = optional_text(None)  # folder: root/<class>/..., or root/{train,test}/<class>/...
    test_fraction: float = rule(0.2, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                                and 0 < v < 1, "a fraction in (0, 1)")  # folder without train/test
    split_seed: int = non_negative_int(0)  # folder without train/test
    channels: int | str = rule("auto", lambda v: v in ("auto", 1, 3), "'auto', 1 or 3")  # folder


def check_dataset(name: str, cfg: DatasetParams) -> None:
    """What a declaration must meet before anything is read: a usable name, the source's own keys, and a
    built-in's name (mnist, cifar10) kept for that dataset, whose tables carry the papers' rows."""
    _require(bool(DATASET_NAME.fullmatch(name)), "data", name, "dataset names of letters, digits, '_' and '-'")
    where = f"data.{name}"
    if cfg.source == "embedded" and name != "mnist":
        raise ParamsError(f"{where}.source = 'embedded' is invalid: the embedded subset is MNIST's (data.mnist); "
                          f"use 'folder', 'npz' or 'torchvision' for {name}")
    if cfg.source == "npz" and not cfg.npz_path:
        raise ParamsError(f"{where}.npz_path is missing: source 'npz' needs the archive's path")
    if cfg.source == "folder" and not cfg.root:
        raise ParamsError(f"{where}.root is missing: source 'folder' needs the folder of class subfolders")
    builtin = BUILTINS.get(name)
    if builtin and (cfg.source == "folder" or cfg.source == "torchvision" and cfg.torchvision not in (
            None, builtin.torchvision)):
        raise ParamsError(f"{where} collides with the built-in dataset '{name}' ({builtin.torchvision}, whose "
                          "tables carry the papers' rows): declare your dataset under a name of its own, "
                          "e.g. data.my_images, and list that name in run.datasets")


@dataclass
class SplitParams:
    train_fraction: float = rule(0.8, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                                 and 0 < v < 1, "a fraction in (0, 1)")
    val_fraction: float = rule(0.1, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                               and 0 <= v < 1, "a fraction in [0, 1)")
    test_size: int = positive_int(5000)


@dataclass
class ReportParams:
    figure_class: int = rule(0, is_int, "a class label")  # class shown in the histogram and the ranked grid
    ranking_method: str = rule("adgan", lambda v: isinstance(v, str), "a method name")  # else the main model
    ranking_count: int = positive_int(8)  # images per row of the ranked grid


@dataclass
class Params:
    seed: int  # the split seed (and the demos'): every training seed sees the same splits
    device: str
    datasets: list[str]
    protocols: list[str]
    methods: list[str]  # every method run, the main model among them
    classes: list[int] | str  # `all`, or labels; `classes_of` resolves them against a dataset's classes
    main_method: str
    latent_dim: int | str
    cache_dir: str
    data: dict[str, DatasetParams]
    split: SplitParams
    report: ReportParams
    method_sections: dict[str, dict] = field(default_factory=dict)
    executor: ExecutorParams = field(default_factory=ExecutorParams)  # where a stage's jobs run (ganad.executors)
    rank: dict = field(default_factory=dict)  # the `rank` section as written; ganad.ranking checks it
    brain: dict = field(default_factory=dict)  # the `brain` section as written; ganad.brain.brain_params checks it
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds (run.seeds): each trains and scores anew
    audit_protocols: list[str] = field(default_factory=list)  # run.audit_protocols: scored by another protocol's models

    def all_methods(self) -> list[str]:
        """The main model first, then the others in run.methods order."""
        return [self.main_method] + [m for m in self.methods if m != self.main_method]

    def methods_for(self, dataset: str) -> list[str]:
        """The methods run on `dataset`, in `all_methods` order: every one, or on the brain data those that
        brain.methods lists."""
        if dataset != BRAIN_DATASET:
            return self.all_methods()
        chosen = set(self.brain.get("methods", BRAIN_DEFAULT_METHODS))
        return [m for m in self.all_methods() if m in chosen]

    def method_config(self, name: str, channels: int, auto_latent: int | None = None):
        """The method's Config for images of `channels` channels: the main model's latent size is
        `model.latent_dim`, and `auto` latent sizes become `auto_latent` when the dataset names one (the
        brain data: 128) or else the paper's value for that kind of image."""
        section = dict(self.method_sections.get(name) or {})
        fields = {f.name for f in dataclasses.fields(config_class(name))}
        if name == self.main_method and "latent_dim" in fields:
            section["latent_dim"] = self.latent_dim
        if section.get("latent_dim", None) == "auto":
            section["latent_dim"] = auto_latent or PAPER_LATENT_DIM[channels]
        return build_config(config_class(name), section, f"methods.{name}")

    def classes_of(self, dataset: str, names: list[str]) -> list[int]:
        """run.classes for `dataset`, whose classes are `names`: all of them, or the listed labels."""
        if self.classes == "all":
            return list(range(len(names)))
        for c in self.classes:
            _require(c < len(names), "run.classes", c,
                     f"labels of {dataset}'s {len(names)} classes 0..{len(names) - 1} ({', '.join(names)})")
        return list(self.classes)

    def fingerprint(self, *parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ParamsError(f"{key} = {value!r} is invalid: allowed {allowed}")


def _section(raw: dict, key: str) -> dict:
    value = raw.get(key) or {}
    _require(isinstance(value, dict), key, value, "a mapping of keys to values")
    return value


def parse_params(raw: dict) -> Params:
    _require(isinstance(raw, dict), "params.yaml", raw, "a mapping of keys to values")
    refuse_unknown(raw, TOP_LEVEL, "")
    run, data, model, sections = (_section(raw, k) for k in ("run", "data", "model", "methods"))
    split_section = _section(raw, "split")
    if "leaky" in split_section:
        raise ParamsError("split.leaky is no longer a setting: the leaky split is the protocol "
                          f"'{LEAKY_PROTOCOL}', scored by the leak audit (run.audit_protocols, on by default) "
                          "beside the disjoint one; remove split.leaky")
    for old, new in (("workers", "jobs"), ("score_workers", "score_jobs")):
        if old in run:
            raise ParamsError(f"run.{old} is no longer a setting: the executor section says where and how many jobs "
                              f"run at once; write executor.{new}: {run[old]!r} instead")
    refuse_unknown(run, ("datasets", "protocols", "methods", "classes", "seeds", "audit_protocols"), "run")
    refuse_unknown(model, ("method", "latent_dim"), "model")

    seed = raw.get("seed", 0)
    _require(is_int(seed) and seed >= 0, "seed", seed, "a non-negative integer")
    device = str(raw.get("device", "auto"))
    _require(device in ("auto", "cpu") or device.startswith("cuda"), "device", device, "'auto', 'cpu' or 'cuda[:N]'")

    cache_dir = data.get("cache_dir", "data/cache")
    _require(isinstance(cache_dir, str) and bool(cache_dir), "data.cache_dir", cache_dir, "a folder path")
    declared = {name: build_config(DatasetParams, section, f"data.{name}")
                for name, section in data.items() if name != "cache_dir"}
    for name, cfg in declared.items():
        check_dataset(name, cfg)
    datasets = list(run.get("datasets") or [])
    _require(bool(datasets), "run.datasets", datasets, "a non-empty list")
    for name in datasets:
        _require(name in declared, "run.datasets", name,
                 f"datasets declared under data ({sorted(declared)}); declare it as data.{name}: "
                 "{source: folder, root: ...} (or npz, torchvision)")
    _require(len(set(datasets)) == len(datasets), "run.datasets", datasets, "each dataset once")
    protocols = list(run.get("protocols") or [])
    _require(bool(protocols), "run.protocols", protocols, "a non-empty list")
    for name in protocols:
        _require(name in PROTOCOLS, "run.protocols", name, f"names from {list(PROTOCOLS)}")
    methods = list(run.get("methods") or [])
    for name in methods:
        _require(name in REGISTRY, "run.methods", name, f"names from {sorted(REGISTRY)}")
    _require(len(set(methods)) == len(methods), "run.methods", methods, "each method once")
    main_method = model.get("method", "adae")
    _require(main_method in REGISTRY, "model.method", main_method, f"names from {sorted(REGISTRY)}")
    _require(main_method in methods, "model.method", main_method, f"one of run.methods {methods} (add it there)")
    refuse_unknown(sections, REGISTRY, "methods")

    classes = run.get("classes", "all")  # the labels exist only in the data: the split stage checks them
    if classes != "all":
        _require(isinstance(classes, list) and bool(classes), "run.classes", classes, "'all' or a non-empty list")
        for c in classes:
            _require(is_int(c) and c >= 0, "run.classes", c, "class labels (integers >= 0)")
        _require(len(set(classes)) == len(classes), "run.classes", classes, "each class once")

    brain = _section(raw, "brain")  # checked in full by ganad.brain.brain_params; its methods here, with run's
    for name in brain.get("methods", BRAIN_DEFAULT_METHODS) or [None]:
        _require(name in methods, "brain.methods", name, f"names from run.methods {methods} (add it there)")

    seeds = run.get("seeds", [0])
    _require(isinstance(seeds, list) and bool(seeds), "run.seeds", seeds, "a non-empty list of training seeds")
    for s in seeds:
        _require(is_int(s) and s >= 0, "run.seeds", s, "non-negative integers")
    _require(len(set(seeds)) == len(seeds), "run.seeds", seeds, "each seed once")

    audits = run.get("audit_protocols", [])
    _require(isinstance(audits, list), "run.audit_protocols", audits, f"a list: [{LEAKY_PROTOCOL}] or []")
    for name in audits:
        _require(name in AUDIT_PROTOCOLS, "run.audit_protocols", name, f"names from {list(AUDIT_PROTOCOLS)} or []")
        _require(AUDIT_PROTOCOLS[name] in protocols, "run.audit_protocols", name,
                 f"audits of a protocol in run.protocols: add {AUDIT_PROTOCOLS[name]} there (its models are scored)")

    executor = parse_executor(raw.get("executor"))

    latent_dim = model.get("latent_dim", "auto")
    _require(latent_dim == "auto" or (is_int(latent_dim) and latent_dim > 0), "model.latent_dim",
             latent_dim, "'auto' (32 for grey images, 128 for colour ones) or a positive integer")
    dataset_params = {name: declared[name] for name in datasets}

    split = build_config(SplitParams, split_section, "split")
    report = build_config(ReportParams, raw.get("report"), "report")
    _require(classes == "all" or report.figure_class in classes, "report.figure_class", report.figure_class,
             f"one of run.classes {classes}")
    _require(report.ranking_method in REGISTRY, "report.ranking_method", report.ranking_method,
             f"names from {sorted(REGISTRY)}")

    return Params(seed, device, datasets, protocols, methods, classes, main_method, latent_dim, cache_dir,
                  dataset_params, split, report, dict(sections), executor, _section(raw, "rank"),
                  brain, list(seeds), list(audits))


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"'{path}' not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"'{path}' is not valid YAML: {exc}") from exc
    return parse_params(raw or {})


def load_method_config(path: str | Path, name: str):
    """A method's resolved Config, as the configure stage wrote it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"'{path}' not found; run `dvc repro` (its configure stage writes it)")
    return build_config(config_class(name), json.loads(path.read_text()), str(path))
