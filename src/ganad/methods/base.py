"""The interface every anomaly detector implements, and its params handling.

A method is built from its params section (`methods.<name>` in params.yaml,
parsed into the method's `Config` dataclass), fitted on normal training images
with a normal validation slice, and scores images: higher means more anomalous.
`save`/`load` round-trip everything needed to score again.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..images import ImageSet


class MethodUnavailable(RuntimeError):
    """The method cannot run on this machine (e.g. pretrained weights cannot be had).

    The pipeline records the message as the method's result for that run and
    goes on; tables show the method as not run, with the message.
    """


class ParamsError(ValueError):
    """A params value is invalid; the message names the key, the value and what is allowed."""


def build_config(config_cls: type, section: dict[str, Any], where: str):
    """Parse a params section into `config_cls`, naming unknown keys and bad values."""
    section = dict(section or {})
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    config = config_cls(**section)
    for field in dataclasses.fields(config_cls):
        value = getattr(config, field.name)
        rule = field.metadata.get("check")
        if rule is not None and not rule(value):
            raise ParamsError(f"{where}.{field.name} = {value!r} is invalid: must be {field.metadata['rule']}")
    return config


def is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


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


def flag(default: bool):
    return rule(default, lambda v: isinstance(v, bool), "true or false")


def one_of(default, choices):
    return rule(default, lambda v: v in choices, f"one of {list(choices)}")


class Method(ABC):
    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config, channels: int, device: torch.device):
        self.config = config
        self.channels = channels
        self.device = device

    @abstractmethod
    def fit(self, train: ImageSet, val: ImageSet, run) -> None:
        """Learn from normal images; `run` is a `training.TrainingRun` for logging and checkpoints."""

    @abstractmethod
    def score(self, images: ImageSet) -> np.ndarray:
        """One float per image; higher means more anomalous."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything `load_state_dict` needs to resume training or to score."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def selected(self) -> dict:
        """Values the method chose from data (bandwidths, sizes), shown in reports."""
        return {}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"method": self.name, "config": dataclasses.asdict(self.config), "channels": self.channels,
                   "state": self.state_dict(), "selected": self.selected()}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, device: torch.device) -> "Method":
        payload = torch.load(path, map_location=device, weights_only=False)
        if payload["method"] != cls.name:
            raise ValueError(f"'{path}' holds a {payload['method']} model, not {cls.name}")
        method = cls(cls.Config(**payload["config"]), payload["channels"], device)
        method.load_state_dict(payload["state"])
        return method
