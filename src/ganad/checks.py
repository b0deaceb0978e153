"""Params checks: every rule a params value must meet, with no heavy import.

A method's `Config` is a dataclass whose fields carry their rule (`positive_int(64)`,
`one_of("last", SELECT)`, ...); `build_config` parses a params section into it and
names the key, the value and what is allowed when something is wrong. This module
imports neither torch nor scikit-learn nor numba, so that `load_params()` in the data
stages starts in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


class StageError(Exception):
    """An error ganad raises on purpose, whose message names the problem and the fix: a stage prints it
    alone, without a traceback (ganad.cli)."""


class MissingInput(StageError, FileNotFoundError):
    """A file that an earlier stage writes is not there; the message names it and the stage that writes it."""


class ParamsError(StageError, ValueError):
    """A params value is invalid; the message names the key, the value and what is allowed."""


def build_config(config_cls: type, section: dict[str, Any] | None, where: str):
    """Parse a params section into `config_cls`, naming unknown keys and bad values."""
    if section is not None and not isinstance(section, dict):
        raise ParamsError(f"{where} = {section!r} is invalid: must be a mapping of keys to values")
    section = dict(section or {})
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    config = config_cls(**section)
    for field in dataclasses.fields(config_cls):
        value = getattr(config, field.name)
        check = field.metadata.get("check")
        if check is None:
            raise TypeError(f"{config_cls.__name__}.{field.name} has no rule; declare it with a checks helper")
        if not check(value):
            raise ParamsError(f"{where}.{field.name} = {value!r} is invalid: must be {field.metadata['rule']}")
    return config


def refuse_unknown(section: dict, allowed, where: str) -> None:
    """Stop on keys of `section` outside `allowed` (a misspelt key must not be ignored)."""
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        place = f"{where}: unknown key(s)" if where else "unknown top-level key(s)"
        raise ParamsError(f"{place} {unknown}; allowed: {sorted(allowed)}")


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or type(v).__module__ == "numpy" and hasattr(
        v, "dtype") and v.dtype.kind in "iuf"


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or type(v).__module__ == "numpy" and hasattr(
        v, "dtype") and v.dtype.kind in "iu"


def rule(default, check, text: str, factory: bool = False):
    """A dataclass field whose value `build_config` checks with `check`; `text` says what is allowed."""
    meta = {"check": check, "rule": text}
    if factory:
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive(default):
    return rule(default, lambda v: is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative(default):
    return rule(default, lambda v: is_number(v) and math.isfinite(v) and v >= 0, "a finite number >= 0")


def positive_int(default):
    return rule(default, lambda v: is_int(v) and v > 0, "a positive integer")


def non_negative_int(default, text: str = "an integer >= 0"):
    return rule(default, lambda v: is_int(v) and v >= 0, text)


def fraction(default):
    return rule(default, lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)")


def unit_interval(default):
    return rule(default, lambda v: is_number(v) and 0 < v <= 1, "in (0, 1]")


def flag(default: bool):
    return rule(default, lambda v: isinstance(v, bool), "true or false")


def one_of(default, choices):
    return rule(default, lambda v: v in choices, f"one of {list(choices)}")


def auto_or_positive_int(default):
    return rule(default, lambda v: v == "auto" or (is_int(v) and v > 0), "'auto' or a positive integer")


def positive_ints(default):
    return rule(default, lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(x) and x > 0 for x in v),
                "a non-empty list of positive integers", factory=True)


def positive_floats(default):
    return rule(default, lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                and all(is_number(x) and math.isfinite(x) and x > 0 for x in v),
                "a non-empty list of positive numbers", factory=True)


def optional_positive_int(default=None):
    return rule(default, lambda v: v is None or (is_int(v) and v > 0), "null or a positive integer")


def optional_seed(default=None):
    return rule(default, lambda v: v is None or (is_int(v) and v >= 0), "null or a non-negative integer")


def optional_text(default=None):
    return rule(default, lambda v: v is None or isinstance(v, str), "null or a string")


# --- the base configs that methods extend ----------------------------------------------------------

SELECT = ("last", "best_val")
ADAM_IMPLS = ("fused", "foreach", "loop")  # see ganad.neural.adam


@dataclasses.dataclass
class NetConfig:
    """What every network method shares (see `ganad.neural`); a method redeclares a field to change
    its default and adds its own fields below these."""

    latent_dim: int = positive_int(32)
    width: int = positive_int(64)  # channels of the first DCGAN layer
    epochs: int = positive_int(20)
    min_steps: int = non_negative_int(0)  # raises epochs until training takes this many updates
    batch_size: int = positive_int(64)
    drop_last: bool = flag(False)  # drop the last incomplete batch of every epoch
    select: str = one_of("last", SELECT)  # best_val: the epoch with the lowest normal-validation score
    score_batch_size: int = positive_int(256)
    threads: int = non_negative_int(0, "an integer >= 0 (0 keeps torch's default)")


@dataclasses.dataclass
class AdamConfig(NetConfig):
    """A network method trained with Adam (`NeuralMethod.adam`)."""

    lr: float = positive(2e-4)
    beta1: float = fraction(0.5)
    beta2: float = fraction(0.999)
    adam: str = one_of("loop", ADAM_IMPLS)  # speed only: the same Adam maths


PAPER_PCA_SIZES = [20, 40, 60, 80, 100]


@dataclasses.dataclass
class FeatureConfig:
    """What every features -> PCA -> detector method shares (see `ganad.features`)."""

    pca_sizes: list = positive_ints(PAPER_PCA_SIZES)
    pca_criterion: str = one_of("ppca", ["ppca"])  # density methods may also use "detector"
    max_train: int | None = optional_positive_int(None)  # deviation: seeded subsample of the training images
    seed: int | None = optional_seed(None)  # None: drawn from the run's seeded global RNG
    # threads for BLAS / OpenMP inside scikit-learn and numpy (not the AlexNet forward pass). With 2
    # threads on the shared 2-core machine, OpenBLAS spun: one 200 x 1024 SVD took 2.4-5.5 s, not 0.07-0.1 s.
    blas_threads: int = positive_int(1)


@dataclasses.dataclass
class AlexNetOptions:
    """Where the ImageNet AlexNet weights of the `*_alexnet` methods come from."""

    weights_dir: str | None = optional_text(None)  # None: torch hub's cache, $TORCH_HOME/hub/checkpoints
    download: bool = flag(False)  # True lets torchvision fetch the weights (needs the internet)
    feature_batch_size: int = positive_int(64)


PAPER_BANDWIDTHS = [float(2.0 ** (j / 2)) for j in range(9)]  # 2^0, 2^0.5, ..., 2^4
PAPER_COMPONENTS = list(range(2, 21))


@dataclasses.dataclass
class KDEConfig(FeatureConfig):
    """`kde` and `kde_alexnet` (`ganad.features.KDEDetector`)."""

    pca_criterion: str = one_of("detector", ["detector", "ppca"])
    bandwidths: list = positive_floats(PAPER_BANDWIDTHS)
    cv_folds: int = rule(10, lambda v: is_int(v) and v >= 2, "an integer >= 2")
    standardize: bool = flag(False)  # False: raw PCA coordinates, where the paper's grid 1..16 is meaningful


@dataclasses.dataclass
class OCSVMConfig(FeatureConfig):
    """`ocsvm` and `ocsvm_alexnet` (`ganad.features.OCSVMDetector`)."""

    nu: float = unit_interval(0.1)
    gamma: str = one_of("evangelista", ["evangelista", "scale"])
