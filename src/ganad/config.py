"""params.yaml as plain dataclasses, validated before any stage does work.

Every stage calls `load_params()`; a bad key or value stops it with a message
that names the key, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .methods import REGISTRY, get_method
from .methods.base import ParamsError, build_config
from .protocols import PROTOCOLS
from .sources import DATASET_SHAPES, NUM_CLASSES, SOURCES

# Latent sizes the ADAE paper uses per dataset (Appendix A); `auto` resolves to these.
PAPER_LATENT_DIM = {"mnist": 32, "cifar10": 128}


@dataclass
class DatasetParams:
    source: str = "embedded"
    npz_path: str | None = None
    download: bool = False
    mirror: str | None = None  # URL prefix of a local copy of the torchvision files


@dataclass
class SplitParams:
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    test_size: int = 5000
    leaky: bool = False


@dataclass
class ReportParams:
    figure_class: int = 0  # class shown in the histogram and the ranked grid
    ranking_method: str = "adgan"  # ranks the ranked grid when it ran, else the main model
    ranking_count: int = 8  # images per row of the ranked grid


@dataclass
class Params:
    seed: int
    device: str
    datasets: list[str]
    protocols: list[str]
    methods: list[str]  # besides the main model
    classes: list[int]
    main_method: str
    latent_dim: int | str
    cache_dir: str
    data: dict[str, DatasetParams]
    split: SplitParams
    report: ReportParams
    method_sections: dict[str, dict] = field(default_factory=dict)

    def all_methods(self) -> list[str]:
        return [self.main_method] + [m for m in self.methods if m != self.main_method]

    def method_config(self, name: str, dataset: str):
        """The method's Config for `dataset`: `auto` latent sizes become the paper's per-dataset value."""
        section = dict(self.method_sections.get(name) or {})
        if name == self.main_method:
            section["latent_dim"] = self.latent_dim
        if section.get("latent_dim", None) == "auto":
            section["latent_dim"] = PAPER_LATENT_DIM[dataset]
        return build_config(get_method(name).Config, section, f"methods.{name}")

    def fingerprint(self, *parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _require(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ParamsError(f"{key} = {value!r} is invalid: allowed {allowed}")


def parse_params(raw: dict) -> Params:
    run = raw.get("run") or {}
    data = raw.get("data") or {}
    model = raw.get("model") or {}

    seed = raw.get("seed", 0)
    _require(isinstance(seed, int) and seed >= 0, "seed", seed, "a non-negative integer")
    device = str(raw.get("device", "auto"))
    _require(device in ("auto", "cpu") or device.startswith("cuda"), "device", device, "'auto', 'cpu' or 'cuda[:N]'")

    datasets = list(run.get("datasets") or [])
    _require(bool(datasets), "run.datasets", datasets, "a non-empty list")
    for name in datasets:
        _require(name in DATASET_SHAPES, "run.datasets", name, f"names from {sorted(DATASET_SHAPES)}")
    protocols = list(run.get("protocols") or [])
    _require(bool(protocols), "run.protocols", protocols, "a non-empty list")
    for name in protocols:
        _require(name in PROTOCOLS, "run.protocols", name, f"names from {list(PROTOCOLS)}")
    methods = list(run.get("methods") or [])
    main_method = model.get("method", "dcae")
    _require(main_method not in methods, "run.methods", main_method,
             f"methods other than the main model '{main_method}' (model.method)")
    for name in [main_method, *methods]:
        _require(name in REGISTRY, "model.method" if name == main_method else "run.methods", name,
                 f"names from {sorted(REGISTRY)}")

    n_classes = min(NUM_CLASSES[d] for d in datasets)
    classes = run.get("classes", "all")
    classes = list(range(n_classes)) if classes == "all" else list(classes)
    _require(bool(classes), "run.classes", classes, "'all' or a non-empty list")
    for c in classes:
        _require(isinstance(c, int) and 0 <= c < n_classes, "run.classes", c, f"class labels 0..{n_classes - 1}")

    latent_dim = model.get("latent_dim", "auto")
    _require(latent_dim == "auto" or (isinstance(latent_dim, int) and latent_dim > 0), "model.latent_dim",
             latent_dim, "'auto' (32 for mnist, 128 for cifar10) or a positive integer")

    dataset_params = {}
    for name in datasets:
        section = data.get(name) or {}
        dp = build_config(DatasetParams, section, f"data.{name}")
        _require(dp.source in SOURCES, f"data.{name}.source", dp.source, f"one of {list(SOURCES)}")
        dataset_params[name] = dp

    split = build_config(SplitParams, raw.get("split") or {}, "split")
    _require(0 < split.train_fraction < 1, "split.train_fraction", split.train_fraction, "a fraction in (0, 1)")
    _require(0 <= split.val_fraction < 1, "split.val_fraction", split.val_fraction, "a fraction in [0, 1)")
    _require(isinstance(split.test_size, int) and split.test_size > 0, "split.test_size", split.test_size,
             "a positive integer")

    report = build_config(ReportParams, raw.get("report") or {}, "report")
    _require(report.figure_class in classes, "report.figure_class", report.figure_class, f"one of run.classes {classes}")
    _require(isinstance(report.ranking_count, int) and report.ranking_count > 0, "report.ranking_count",
             report.ranking_count, "a positive integer")

    sections = raw.get("methods") or {}
    params = Params(seed, device, datasets, protocols, methods, classes, main_method, latent_dim,
                    str(data.get("cache_dir", "data/cache")), dataset_params, split, report, dict(sections))
    for name in params.all_methods():  # parse every section now so that bad values stop the run early
        for dataset in datasets:
            params.method_config(name, dataset)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"'{path}' not found; run from the repository root")
    return parse_params(yaml.safe_load(path.read_text()) or {})
