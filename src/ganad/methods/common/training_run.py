"""What every training run shares: checkpoints, resume, curves, NaN guard.

A `TrainingRun` belongs to one (dataset, protocol, method, class). After each
epoch the method's full training state (weights, optimisers, RNG, the curves so
far) is written atomically to the checkpoint through `ganad.runtime.store` (tensors and
plain data, never a pickle). A new run with the same fingerprint resumes from it;
the curves are rebuilt from the checkpoint's history, so an interrupted and
resumed run leaves the same curve files as an uninterrupted one. A checkpoint of
another fingerprint (params, data or the method's code changed), of an older
format, truncated, or not ours is reported and training starts over.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import sys
import uuid
from pathlib import Path

import torch

from ganad.errors import StageError
from ganad.files import TMP_MARK, remove_stale_temporaries
from ganad.runtime import store


class TrainingDiverged(StageError, RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


SIGNAL_FILE = "DVCLIVE_STEP_COMPLETED"  # dvclive's VS Code signal (see TrainingRun.close)


class TrainingRun:
    def __init__(self, checkpoint: Path | None, fingerprint: str, log_dir: Path | None = None):
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.fingerprint = fingerprint
        self.log_dir = Path(log_dir) if log_dir else None
        self.history: list[dict] = []
        self.live = None
        self.previous: Path | None = None  # the curves of the previous run, set aside until this one ends

    # --- the curves -------------------------------------------------------------------------------

    def _open_live(self) -> None:
        """A fresh dvclive folder holding the history so far, exactly as it was logged. The previous curves
        move aside (`.<class>.tmp-<unique>`) until this run ends: a run that fails puts them back, so a
        failed retrain leaves the curves of the model that is still there."""
        if self.log_dir is None:
            return
        from dvclive import Live

        remove_stale_temporaries(self.log_dir.parent, self.log_dir.name)  # set aside by a run that was killed
        self.previous = None
        if self.log_dir.is_dir():
            self.previous = self.log_dir.with_name(f".{self.log_dir.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
            os.replace(self.log_dir, self.previous)
        self.live = Live(str(self.log_dir), save_dvc_exp=False, dvcyaml=False)
        for entry in self.history:
            self._log(entry)

    def _log(self, entry: dict) -> None:
        for key, value in entry.items():
            if key != "epoch":
                self.live.log_metric(key, value)
        self.live.next_step()

    def close(self, completed: bool = True) -> None:
        """End the curves: on success the previous ones go; after a failure (`completed` False) they come
        back in place of this run's."""
        self._end_live()
        previous, self.previous = self.previous, None
        if previous is not None and previous.is_dir():
            if completed:
                shutil.rmtree(previous, ignore_errors=True)
            else:
                shutil.rmtree(self.log_dir, ignore_errors=True)
                os.replace(previous, self.log_dir)

    def _end_live(self) -> None:
        if self.live is not None:
            try:
                self.live.end()
            except FileNotFoundError as exc:
                # The last thing dvclive's end() does is check for, then delete, a signal file for VS Code
                # (.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED) that every Live in the repository shares; two
                # classes ending at once in worker processes race on it. The curves are written by then.
                if SIGNAL_FILE not in str(exc):
                    raise
            self.live = None

    def __enter__(self) -> TrainingRun:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        self.close(completed=exc_type is None)

    # --- resume -----------------------------------------------------------------------------------

    def _read_checkpoint(self) -> dict | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        try:
            payload = store.load(self.checkpoint)
        except store.StoreError as exc:
            print(f"checkpoint not used, training starts over: {exc}", file=sys.stderr)
            return None
        if payload.get("fingerprint") != self.fingerprint:
            print(
                f"checkpoint '{self.checkpoint}' belongs to other params, data or code; training starts over",
                file=sys.stderr,
            )
            return None
        return payload

    def resume(self, method) -> int:
        """Load the checkpoint if it belongs to this run; open the curves; return the first epoch to train."""
        payload = self._read_checkpoint()
        start = 0
        if payload is not None:
            backup = copy.deepcopy(method.state_dict())
            try:
                method.load_state_dict(payload["state"])
                torch.set_rng_state(payload["torch_rng"])
                self.history = list(payload["history"])
                start = int(payload["epoch"]) + 1
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                method.load_state_dict(backup)
                self.history, start = [], 0
                print(
                    f"checkpoint '{self.checkpoint}' does not fit this method ({exc}); training starts over",
                    file=sys.stderr,
                )
        self._open_live()
        return start

    # --- every epoch ------------------------------------------------------------------------------

    def check_finite(self, losses: dict[str, float], epoch: int, step: int) -> None:
        for name, value in losses.items():
            if not math.isfinite(value):
                kept = (
                    f"the last good checkpoint stays at '{self.checkpoint}'" if self.checkpoint else "nothing was saved"
                )
                raise TrainingDiverged(
                    f"loss '{name}' became {value} at epoch {epoch}, step {step}; {kept}. "
                    "Lower the learning rate or check the input data for NaNs."
                )

    def check_validation(self, metrics: dict[str, float], epoch: int, n_val: int) -> None:
        """A validation score that is NaN or infinite (with validation images to score) stops training as a
        NaN loss does, before the epoch is checkpointed."""
        value = metrics.get("val_score")
        if n_val and value is not None and not math.isfinite(value):
            kept = f"the last good checkpoint stays at '{self.checkpoint}'" if self.checkpoint else "nothing was saved"
            raise TrainingDiverged(
                f"the validation score became {value} at epoch {epoch} (its {n_val} normal validation images); "
                f"{kept}. Lower the learning rate or check the input data for NaNs."
            )

    def end_epoch(self, method, epoch: int, metrics: dict[str, float]) -> None:
        entry = {"epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        self.history.append(entry)
        if self.checkpoint is not None:
            store.save(
                self.checkpoint,
                {
                    "fingerprint": self.fingerprint,
                    "epoch": epoch,
                    "state": method.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "history": self.history,
                },
            )
        if self.live is not None:
            self._log(entry)
