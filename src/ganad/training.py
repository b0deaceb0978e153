"""What every training loop shares: per-epoch logging, checkpoints, resume, NaN guard.

A `TrainingRun` belongs to one (dataset, protocol, method, class). After each
epoch the method's full state (weights, optimisers, RNG) is written atomically
to the checkpoint; a new run with the same fingerprint resumes from it, so an
interrupted `dvc repro` continues where it stopped. A different fingerprint
(params, data or the training code changed; see `code_version`) starts over.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch


# The library code that decides what a training run computes (relative to the package).
TRAINING_CODE = ("methods", "nets.py", "search.py", "kernels.py", "training.py", "images.py")


def code_version(package: Path = Path(__file__).resolve().parent) -> str:
    """A hash of TRAINING_CODE's sources. It goes into every checkpoint's fingerprint, so that after
    a code change `dvc repro` retrains instead of resuming a finished checkpoint of the old code."""
    digest = hashlib.sha256()
    for name in TRAINING_CODE:
        path = package / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingRun:
    def __init__(self, checkpoint: Path | None, fingerprint: str, live=None):
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.fingerprint = fingerprint
        self.live = live
        self.history: list[dict] = []

    def resume(self, method) -> int:
        """Load the checkpoint if it belongs to this run; return the first epoch still to train."""
        if self.checkpoint is None or not self.checkpoint.is_file():
            return 0
        payload = torch.load(self.checkpoint, map_location=method.device, weights_only=False)
        if payload.get("fingerprint") != self.fingerprint:
            return 0
        method.load_state_dict(payload["state"])
        torch.set_rng_state(payload["torch_rng"])
        self.history = payload["history"]
        if self.live is not None:
            self.live.step = payload["epoch"] + 1
        return payload["epoch"] + 1

    def check_finite(self, losses: dict[str, float], epoch: int, step: int) -> None:
        for name, value in losses.items():
            if not math.isfinite(value):
                kept = f"the last good checkpoint stays at '{self.checkpoint}'" if self.checkpoint else "nothing was saved"
                raise TrainingDiverged(
                    f"loss '{name}' became {value} at epoch {epoch}, step {step}; {kept}. "
                    "Lower the learning rate or check the input data for NaNs."
                )

    def end_epoch(self, method, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append({"epoch": epoch, **metrics})
        if self.live is not None:
            for key, value in metrics.items():
                self.live.log_metric(key, value)
            self.live.next_step()
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            payload = {"fingerprint": self.fingerprint, "epoch": epoch, "state": method.state_dict(),
                       "torch_rng": torch.get_rng_state(), "history": self.history}
            tmp = self.checkpoint.with_suffix(".tmp")
            torch.save(payload, tmp)
            tmp.replace(self.checkpoint)


def batches(n: int, batch_size: int, shuffle: bool, drop_last: bool = False):
    """Index batches over range(n); shuffling draws from torch's global RNG, which checkpoints save."""
    order = torch.randperm(n) if shuffle else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def epochs_for(n_train: int, batch_size: int, epochs: int, min_steps: int = 0) -> int:
    """`epochs`, raised so that training takes at least `min_steps` optimiser steps.

    Small training sets (360 images per class in the embedded one-class-normal
    runs) would otherwise see only a few dozen updates; the `paper` profile sets
    min_steps 0, so its epochs are the papers'.
    """
    steps_per_epoch = max(1, -(-n_train // batch_size))
    return max(epochs, -(-min_steps // steps_per_epoch))
