"""The interface every anomaly detector implements.

A method is built from its Config (`methods.<name>` in params, checked by
`ganad.schema.parse`), fitted on normal training images with a normal
validation slice, and scores images: higher means more anomalous. `save` writes
what scoring needs (config, weights, what the method chose from data) and `load`
reads it back; both go through `ganad.runtime.store`, so a model file holds tensors and
plain data only. `state_dict` is the full training state that checkpoints keep.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ganad.data.images import ImageSet
from ganad.methods.common.training_run import TrainingRun
from ganad.runtime import store
from ganad.schema import parse


class MethodUnavailable(RuntimeError):
    """The method cannot run on this machine (e.g. pretrained weights cannot be had).

    The pipeline records the message as the method's result for that run and
    goes on; tables show the method as not run, with the message.
    """


class Method(ABC):
    name: ClassVar[str]
    Config: ClassVar[type]

    @classmethod  # noqa: B027 (prepare: a hook most methods leave empty)
    def prepare(cls, config) -> None:
        """Once per stage, before any class: get what every class needs (pretrained weights), or raise
        MethodUnavailable saying why it cannot be had. Most methods need nothing."""

    def __init__(self, config, channels: int, device: torch.device):
        self.config = config
        self.channels = channels
        self.device = device

    def fit(self, train: ImageSet, val: ImageSet, run: TrainingRun | None = None) -> None:
        """Learn from normal images. `run` keeps checkpoints and curves (`TrainingRun`); without one, nothing is
        saved or logged on the way (the per-epoch history is still kept in memory)."""
        self.learn(train, val, run if run is not None else TrainingRun(None, ""))

    @abstractmethod
    def learn(self, train: ImageSet, val: ImageSet, run: TrainingRun) -> None:
        """What `fit` does: the method's training, resuming from and reporting to `run`."""

    @abstractmethod
    def score(self, images: ImageSet) -> np.ndarray:
        """One float64 per image; higher means more anomalous."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything `load_state_dict` needs to resume training (tensors and plain data)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...

    def model_state(self) -> dict:
        """What scoring needs; the model file keeps only this. Defaults to the full state."""
        return self.state_dict()

    def load_model_state(self, state: dict) -> None:
        self.load_state_dict(state)

    def selected(self) -> dict:
        """Values the method chose from data (bandwidths, sizes), shown in reports."""
        return {}

    def save(self, path: Path) -> None:
        store.save(
            path,
            {
                "method": self.name,
                "config": self.config.model_dump(),
                "channels": self.channels,
                "state": self.model_state(),
                "selected": self.selected(),
            },
        )

    @classmethod
    def load(cls, path: Path, device: torch.device) -> Method:
        payload = store.load(path)
        if payload.get("method") != cls.name:
            raise store.StoreError(f"'{path}' holds a {payload.get('method')!r} model, not {cls.name}")
        method = cls(parse(cls.Config, payload["config"], f"'{path}' config"), int(payload["channels"]), device)
        method.load_model_state(payload["state"])
        return method
