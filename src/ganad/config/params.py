"""params.yaml as pydantic models, validated before any stage does work.

Every stage calls `load_params()`, which checks every key and value outside the
method sections, and refuses unknown keys at every level, with one line that
names the key, the value and what is allowed (`ganad.schema.parse`). It imports
nothing heavy (no torch, scikit-learn or numba). A method's section is checked
against its `Config` by `Params.method_config`, which the `configure` stage runs
for every method before any training, and whose result (with `auto` latent sizes
resolved for the dataset's channels) the method's train_score and score stages read from
`data/config/<dataset>/<method>.json`. Checking the method sections there, not
here, keeps every other stage from importing each method's package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, field_validator, model_validator

from ganad.config.brain import BrainParams
from ganad.config.executor import ExecutorParams
from ganad.config.rank import RankParams
from ganad.data.protocols import AUDIT_PROTOCOLS, BRAIN_DATASET, BRAIN_PROTOCOL, LEAKY_PROTOCOL, PROTOCOLS
from ganad.data.sources import BUILTINS, SOURCES
from ganad.errors import ParamsError
from ganad.files import read_json
from ganad.methods import REGISTRY, config_class
from ganad.schema import (
    Bool,
    Float,
    Int,
    Invalid,
    NonEmptyText,
    NonNegativeInt,
    NotBool,
    PositiveInt,
    Section,
    Text,
    invalid,
    once,
    parse,
)

# Latent sizes the ADAE paper uses (Appendix A), by channel count: MNIST-like grey images 32, colour
# images (CIFAR-10) 128; `auto` resolves to these for any dataset.
PAPER_LATENT_DIM = {1: 32, 3: 128}
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a path part and a DVC matrix key
METHOD_NAMES = tuple(REGISTRY)
SEED_MAX = 2**32 - 1  # torch, NumPy and the per-class training seeds (seed * 1000 + class) take these
SeedInt = Annotated[Int, Field(ge=0, le=SEED_MAX)]
# Network sizes beyond these would allocate more than any machine holds (a DCGAN of width w has ~512 w^2
# weights a layer: width 1024 is ~5e8, about 2 GB); `method_config` refuses them naming the key.
SIZE_LIMITS = {"width": 1024, "latent_dim": 16384, "d_hidden": 16384, "z_hidden": 16384}


class DatasetParams(Section):
    """data.<name>: where a dataset's images come from (ganad.data.sources); each source reads its own keys."""

    source: Literal[tuple(SOURCES)] = "embedded"
    npz_path: Text | None = None  # npz
    download: Bool = False  # torchvision
    mirror: Text | None = None  # torchvision: URL prefix of a local copy of its files
    torchvision: Text | None = None  # torchvision: the class (KMNIST, SVHN...); default by name
    root: Text | None = None  # folder: root/<class>/..., or root/{train,test}/<class>/...
    test_fraction: Float = Field(0.2, gt=0, lt=1)  # folder without train/test
    split_seed: Int = Field(0, ge=0)  # folder without train/test
    channels: Annotated[Literal["auto", 1, 3], NotBool] = "auto"  # folder

    @model_validator(mode="after")
    def _source_needs(self):
        if self.source == "npz" and not self.npz_path:
            raise Invalid("npz_path", "is missing: source 'npz' needs the archive's path")
        if self.source == "folder" and not self.root:
            raise Invalid("root", "is missing: source 'folder' needs the folder of class subfolders")
        return self


class DataParams(Section, extra="allow"):
    """data: the cache folder, and one declaration per dataset name (`data.<name>`, a `DatasetParams`)."""

    cache_dir: NonEmptyText = Field("data/cache", description="a folder path")
    __pydantic_extra__: dict[str, DatasetParams] = Field(init=False)

    @property
    def declared(self) -> dict[str, DatasetParams]:
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _names(self):
        """A usable name, and a built-in's name (mnist, cifar10) kept for that dataset, whose tables carry the
        papers' rows."""
        for name, cfg in self.declared.items():
            if not DATASET_NAME.fullmatch(name):
                raise invalid("", name, "a dataset name of letters, digits, '_' and '-'")
            if name == BRAIN_DATASET:
                raise Invalid(
                    name,
                    "is a reserved name: the brain study's prepared data live in data/prepared/brain (the brain_* "
                    "stages, configured in the `brain` section); declare your dataset under a name of its own, "
                    "e.g. data.my_scans, and list that name in run.datasets",
                )
            if cfg.source == "embedded" and name != "mnist":
                raise Invalid(
                    f"{name}.source",
                    "= 'embedded' is invalid: the embedded subset is MNIST's "
                    f"(data.mnist); use 'folder', 'npz' or 'torchvision' for {name}",
                )
            builtin = BUILTINS.get(name)
            if builtin and (
                cfg.source == "folder"
                or cfg.source == "torchvision"
                and cfg.torchvision not in (None, builtin.torchvision)
            ):
                raise Invalid(
                    name,
                    f"collides with the built-in dataset '{name}' ({builtin.torchvision}, whose "
                    "tables carry the papers' rows): declare your dataset under a name of its own, "
                    "e.g. data.my_images, and list that name in run.datasets",
                )
        return self


class SplitParams(Section):
    train_fraction: Float = Field(0.8, gt=0, lt=1)
    val_fraction: Float = Field(0.1, ge=0, lt=1)
    test_size: Int = Field(5000, gt=0)
    # every test split cut to at most this many images, stratified by anomaly label and seeded (the same
    # images for every method): for the scores that search per image at the paper's settings; null keeps all
    test_max: Annotated[Int, Field(gt=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _leaky_is_gone(cls, data):
        if isinstance(data, dict) and "leaky" in data:
            raise Invalid(
                "leaky",
                "is no longer a setting: the leaky split is the protocol "
                f"'{LEAKY_PROTOCOL}', scored by the leak audit (run.audit_protocols, on by default) "
                "beside the disjoint one; remove split.leaky",
            )
        return data


class DecisionParams(Section):
    """decision: which images to flag (ganad.engine.conformal): a p-value from the model's normal validation
    scores, flagged at or below `alpha`; the false-alarm rate on normal images like the validation ones is then
    at most alpha."""

    alpha: Annotated[Float, Field(gt=0, lt=1)] = 0.05
    # validation images scored per model for the p-values (a seeded sample where there are more): the searches of
    # ADGAN and AnoGAN cost per image; p-values resolve 1 / (n + 1)
    calibration_max: Annotated[Int, Field(gt=0)] | None = 2000


class ReportParams(Section):
    figure_class: Int = 0  # class shown in the histogram and the ranked grid
    ranking_method: Literal[METHOD_NAMES] = "adgan"  # else the main model
    ranking_count: Int = Field(8, gt=0)  # images per row of the ranked grid
    # the convergence studies (benchmarks/convergence.py) the results page reads each budget's share of the
    # plateau from: a folder or a list of them, the first that ran the method at the run's settings speaks
    # for it; null for none
    convergence_study: Text | list[Text] | None = Field(
        default_factory=lambda: ["reports/convergence/embedded_mnist_adae_began", "reports/convergence/embedded_mnist"]
    )

    @property
    def studies(self) -> list[Path]:
        """`convergence_study` as a list of folders, in order (empty for none)."""
        study = self.convergence_study or []
        return [Path(study)] if isinstance(study, str) else [Path(s) for s in study]


class RunParams(Section):
    """run: what the pipeline runs."""

    datasets: Annotated[list[Text], Field(min_length=1), AfterValidator(once)]
    protocols: Annotated[list[Literal[tuple(PROTOCOLS)]], Field(min_length=1), AfterValidator(once)]
    methods: Annotated[list[Literal[METHOD_NAMES]], Field(min_length=1), AfterValidator(once)]  # the main model too
    # `all`, or labels; `Params.classes_of` checks them against a dataset's classes (they exist only in the data)
    classes: Literal["all"] | Annotated[list[NonNegativeInt], Field(min_length=1), AfterValidator(once)] = "all"
    # training seeds: each trains and scores anew (the split seed is `seed`)
    seeds: Annotated[list[SeedInt], Field(min_length=1), AfterValidator(once)] = [0]
    # scored by another protocol's models
    audit_protocols: Annotated[list[Literal[tuple(AUDIT_PROTOCOLS)]], AfterValidator(once)] = []
    # every network method's training budget times this (methods.<name>.budget_scale: updates rounded up, the last
    # epoch cut short): a profile run end to end at a stated share of its budgets before it is paid for in full
    budget_scale: Annotated[Float, Field(gt=0)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _workers_are_gone(cls, data):
        for old, new in (("workers", "jobs"), ("score_workers", "score_jobs")):
            if isinstance(data, dict) and old in data:
                raise Invalid(
                    old,
                    "is no longer a setting: the executor section says where and how many jobs run "
                    f"at once; write executor.{new}: {data[old]!r} instead",
                )
        return data


class ModelParams(Section):
    """model: the main model, and its latent size."""

    method: Literal[METHOD_NAMES] = "adae"
    latent_dim: Literal["auto"] | PositiveInt = Field(
        "auto", description="'auto' (32 for grey images, 128 for colour ones) or an integer > 0"
    )


class Params(Section):
    """params.yaml: every section checked, cross-section rules included. The section names are the file's;
    the properties below (`datasets`, `methods`, `data`, ...) are what the stages read."""

    seed: SeedInt = 0  # the split seed (and the demos'): every training seed sees the same splits
    device: Text = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="'auto', 'cpu' or 'cuda[:N]'")
    run: RunParams
    executor: ExecutorParams = Field(default_factory=ExecutorParams)  # where a stage's jobs run
    data_section: DataParams = Field(default_factory=DataParams, alias="data")
    split: SplitParams = Field(default_factory=SplitParams)
    decision: DecisionParams = Field(default_factory=DecisionParams)
    report: ReportParams = Field(default_factory=ReportParams)
    model: ModelParams = Field(default_factory=ModelParams)
    # methods.<name> as written, for registry names only; `method_config` checks one against its Config
    method_sections: dict[str, dict[str, Any] | None] = Field(default_factory=dict, alias="methods")
    rank: RankParams | None = None  # the rank stages need it (ganad.studies.ranking.rank_params)
    brain: BrainParams = Field(default_factory=BrainParams)

    @field_validator("method_sections", mode="before")
    @classmethod
    def _registry_names(cls, sections):
        unknown = sorted(map(str, set(sections) - set(REGISTRY))) if isinstance(sections, dict) else []
        if unknown:
            raise Invalid("", f": unknown key(s) {unknown}; allowed: {sorted(REGISTRY)}")
        return sections

    @model_validator(mode="after")
    def _sections_agree(self):
        declared, run = self.data_section.declared, self.run
        for name in run.datasets:
            if name not in declared:
                raise invalid(
                    "run.datasets",
                    name,
                    f"a dataset declared under data ({sorted(declared)}); declare "
                    f"it as data.{name}: {{source: folder, root: ...}} (or npz, torchvision)",
                )
        if self.model.method not in run.methods:
            raise invalid("model.method", self.model.method, f"one of run.methods {run.methods} (add it there)")
        for name in self.brain.methods:
            if name not in run.methods:
                raise invalid("brain.methods", name, f"a name from run.methods {run.methods} (add it there)")
        for name in run.audit_protocols:
            if AUDIT_PROTOCOLS[name] not in run.protocols:
                raise invalid(
                    "run.audit_protocols",
                    name,
                    f"the audit of a protocol in run.protocols: add "
                    f"{AUDIT_PROTOCOLS[name]} there (its models are scored)",
                )
        if run.classes != "all" and self.report.figure_class not in run.classes:
            raise invalid("report.figure_class", self.report.figure_class, f"one of run.classes {run.classes}")
        return self

    # --- what the stages read ---

    @property
    def datasets(self) -> list[str]:
        return self.run.datasets

    @property
    def protocols(self) -> list[str]:
        return self.run.protocols

    @property
    def methods(self) -> list[str]:
        """Every method run, the main model among them (run.methods)."""
        return self.run.methods

    @property
    def classes(self) -> list[int] | str:
        return self.run.classes

    @property
    def seeds(self) -> list[int]:
        return self.run.seeds

    @property
    def audit_protocols(self) -> list[str]:
        return self.run.audit_protocols

    @property
    def main_method(self) -> str:
        return self.model.method

    @property
    def latent_dim(self) -> int | str:
        return self.model.latent_dim

    @property
    def cache_dir(self) -> str:
        return self.data_section.cache_dir

    @property
    def data(self) -> dict[str, DatasetParams]:
        """The declarations of the datasets run, by name, in run.datasets order."""
        declared = self.data_section.declared
        return {name: declared[name] for name in self.run.datasets}

    def all_methods(self) -> list[str]:
        """The main model first, then the others in run.methods order."""
        return [self.main_method] + [m for m in self.methods if m != self.main_method]

    def methods_for(self, dataset: str) -> list[str]:
        """The methods run on `dataset`, in `all_methods` order: every one, or on the brain data those that
        brain.methods lists."""
        if dataset != BRAIN_DATASET:
            return self.all_methods()
        chosen = set(self.brain.methods)
        return [m for m in self.all_methods() if m in chosen]

    def method_config(self, name: str, channels: int, auto_latent: int | None = None):
        """The method's Config for images of `channels` channels: the main model's latent size is
        `model.latent_dim`, and `auto` latent sizes become `auto_latent` when the dataset names one (the
        brain data: 128) or else the paper's value for that kind of image."""
        config_cls = config_class(name)
        section = dict(self.method_sections.get(name) or {})
        if name == self.main_method and "latent_dim" in config_cls.model_fields:
            section["latent_dim"] = self.latent_dim
        if section.get("latent_dim") == "auto":
            section["latent_dim"] = auto_latent or PAPER_LATENT_DIM[channels]
        if "budget_scale" in config_cls.model_fields and self.run.budget_scale != 1:
            own = section.get("budget_scale", 1.0)  # a value that is no number is refused by parse, below
            section["budget_scale"] = own * self.run.budget_scale if isinstance(own, (int, float)) else own
        config = parse(config_cls, section, f"methods.{name}")
        for key, limit in SIZE_LIMITS.items():
            value = getattr(config, key, None)
            if isinstance(value, int) and value > limit:
                where = (
                    "model.latent_dim" if key == "latent_dim" and name == self.main_method else f"methods.{name}.{key}"
                )
                raise ParamsError(
                    f"{where} = {value!r} is invalid: must be at most {limit} (larger networks would allocate "
                    "more memory than a machine holds)"
                )
        return config

    def check_selection(self, name: str, config, dataset: str) -> None:
        """`select: best_val` needs validation images: refused when the dataset's split holds none."""
        key, fraction = (
            ("brain.val_fraction", self.brain.val_fraction)
            if dataset == BRAIN_DATASET
            else ("split.val_fraction", self.split.val_fraction)
        )
        if getattr(config, "select", None) == "best_val" and fraction == 0:
            raise ParamsError(
                f"methods.{name}.select = 'best_val' is invalid with {key} = 0: the best epoch is chosen on "
                f"validation images, and there are none; set {key} above 0 (e.g. 0.1) or select: last"
            )

    def require(
        self, dataset: str | None = None, protocol: str | None = None, method: str | None = None, brain: bool = True
    ) -> None:
        """A stage's --dataset, --protocol and --method name what params.yaml declares, else stop naming those.
        `brain`: the stage also runs on the brain study's data (configure, train, score, evaluate, figures)."""
        declared = sorted(self.data_section.declared) + ([BRAIN_DATASET] if brain else [])
        if dataset is not None and dataset not in declared:
            raise ParamsError(
                f"--dataset {dataset!r} is not declared in params.yaml; declared: {declared} (declare it as "
                f"data.{dataset} and list it in run.datasets)"
            )
        if protocol is not None:
            known = [BRAIN_PROTOCOL] if dataset == BRAIN_DATASET else [*PROTOCOLS, *AUDIT_PROTOCOLS]
            if protocol not in known:
                raise ParamsError(f"--protocol {protocol!r} is unknown for {dataset}; known: {known}")
        if method is not None and method not in self.all_methods():
            raise ParamsError(f"--method {method!r} is not in run.methods {self.methods}; add it there")

    def classes_of(self, dataset: str, names: list[str]) -> list[int]:
        """run.classes for `dataset`, whose classes are `names`: all of them, or the listed labels."""
        if self.classes == "all":
            return list(range(len(names)))
        for c in self.classes:
            if c >= len(names):
                raise ParamsError(
                    f"run.classes = {c!r} is invalid: must be labels of {dataset}'s {len(names)} "
                    f"classes 0..{len(names) - 1} ({', '.join(names)})"
                )
        return list(self.classes)

    def fingerprint(self, *parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_params(raw: Any) -> Params:
    """params.yaml's content as `Params`, every section checked."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml = {raw!r} is invalid: must be a mapping of keys to values")
    return parse(Params, raw)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"'{path}' not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ParamsError(f"'{path}' is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"'{path}' is not valid YAML: {exc}") from exc
    return parse_params(raw or {})


def method_overrides(items: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`method.key=value` strings (a benchmark's `--set`) as {method: {key: value}}; each value is read as YAML,
    as `dvc exp run -S` reads it (64 is a number, true a bool, [1, 2] a list, began a string)."""
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not (sep and dot and name and field):
            raise ParamsError(f"'{item}' is not method.key=value; write it like adae.width=64")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ParamsError(f"the value of '{item}' is not valid YAML: {exc}") from exc
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 (no dot) as a string; a number is meant
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        settings.setdefault(name, {})[field] = parsed
    return settings


def load_method_config(path: str | Path, name: str):
    """A method's resolved Config, as the configure stage wrote it."""
    path = Path(path)
    rebuild = (
        f"dvc repro -f -s {'brain_configure' if path.parent.name == BRAIN_DATASET else 'configure'}@{path.parent.name}"
    )
    value = read_json(path, rebuild)
    if not isinstance(value, dict):
        raise ParamsError(
            f"'{path}' holds {type(value).__name__}, not a method's settings; rebuild it with `{rebuild}`"
        )
    return parse(config_class(name), value, str(path))
