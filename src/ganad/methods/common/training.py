"""The training skeleton of every network method: one epoch loop, one scoring loop.

A network method (`NeuralMethod`) declares its networks and optimisers and
writes its own maths: `train_step` (one update on one batch, returning its losses
as floats) and `score_batch` (per-image scores of one batch). Everything around
them lives here and is the same for every method:

- the epoch loop: resume from a checkpoint, shuffled batches (torch's global RNG,
  which checkpoints save), `min_steps`, the NaN/inf guard naming epoch and step,
  per-epoch means of the step losses plus the epoch's validation metrics logged
  through the `TrainingRun`, and `select: best_val`, which keeps the weights of
  the epoch with the lowest mean score on the normal validation slice (no test
  data, no anomaly labels);
- scoring: BatchNorm in eval mode, no gradients, batches of `score_batch_size`,
  one float64 per image;
- the model file keeps the networks only; the checkpoint adds optimisers, the
  best epoch's weights and whatever `extra_state` the method needs to resume;
- helpers every method uses: per-image losses, the Adam factory, thread control.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ganad.data.images import ImageSet
from ganad.methods.base import Method
from ganad.methods.configs import ADAM_IMPLS  # noqa: F401  (the choices of `adam`)


def images_used(n: int, batch_size: int, drop_last: bool) -> int:
    """How many of `n` images an epoch's batches hold: a last partial batch is dropped with `drop_last`
    (unless it is the only one)."""
    return n - (n % batch_size) if drop_last and n >= batch_size else n


def batches(n: int, batch_size: int, shuffle: bool, drop_last: bool = False):
    """Index batches over range(n); shuffling draws from torch's global RNG, which checkpoints save."""
    order = torch.randperm(n) if shuffle else torch.arange(n)
    for start in range(0, images_used(n, batch_size, drop_last), batch_size):
        yield order[start : start + batch_size]


def epochs_for(n_train: int, batch_size: int, epochs: int, min_steps: int = 0) -> int:
    """`epochs`, raised so that training takes at least `min_steps` optimiser steps.

    Small training sets (360 images per class in the embedded one-class-normal
    runs) would otherwise see only a few dozen updates; the `paper` profile sets
    min_steps 0, so its epochs are the papers'.
    """
    steps_per_epoch = max(1, -(-n_train // batch_size))
    return max(epochs, -(-min_steps // steps_per_epoch))


# --- helpers ------------------------------------------------------------------------------------


def per_image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of each image."""
    return (a - b).abs().flatten(1).mean(1)


def per_image_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image's difference, over all pixels and channels."""
    return (a - b).flatten(1).norm(dim=1)


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image."""
    return (a - b).pow(2).flatten(1).mean(1)


def adam(params, lr: float, betas: tuple[float, float], impl: str, device: torch.device) -> torch.optim.Adam:
    """torch.optim.Adam with the implementation `impl`: `fused` (one kernel; CPU, CUDA, MPS, XPU),
    `foreach` (multi-tensor) or `loop` (one tensor at a time, torch's default on a CPU). Same maths."""
    options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[impl]
    if impl == "fused" and device.type not in ("cpu", "cuda", "mps", "xpu"):
        options = {"foreach": True}
    return torch.optim.Adam(params, lr=lr, betas=betas, **options)


@contextlib.contextmanager
def torch_threads(n: int):
    """Use `n` intra-op threads inside the block (0: leave torch's setting)."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each loaded optimiser state tensor its parameter's memory layout. Files store tensors
    contiguous; a channels-last parameter with contiguous moments makes fused Adam compute garbage,
    since its kernel walks parameter and moments as one flat buffer."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    opt.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _copy(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


# --- the skeleton -------------------------------------------------------------------------------


class NeuralMethod(Method):
    """A method of torch networks on the shared loops. Subclasses set `self.nets` and `self.optimizers`
    (name -> module / optimiser) in `__init__` and implement `train_step` and `score_batch`."""

    memory_format = torch.contiguous_format

    def __init__(self, config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.best: dict | None = None  # {"epoch", "val_score", "nets"} for select: best_val

    def adam(self, net: nn.Module, lr: float | None = None) -> torch.optim.Adam:
        cfg = self.config
        return adam(net.parameters(), cfg.lr if lr is None else lr, (cfg.beta1, cfg.beta2), cfg.adam, self.device)

    # --- what a method writes ---------------------------------------------------------------------

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        """One update on batch `x` (on the device); returns the step's losses as floats."""
        raise NotImplementedError

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image anomaly scores of batch `x` (eval mode, no gradient)."""
        raise NotImplementedError

    @classmethod
    def epochs(cls, cfg, n_train: int) -> int:
        """How many epochs `fit` trains with settings `cfg`: `epochs`, raised to reach `min_steps` updates."""
        return epochs_for(
            images_used(n_train, cfg.batch_size, cfg.drop_last), cfg.batch_size, cfg.epochs, cfg.min_steps
        )

    @classmethod
    def steps_per_epoch(cls, cfg, n_train: int) -> int:
        """How many steps one epoch takes on `n_train` images with settings `cfg` (one at least)."""
        return max(1, -(-images_used(n_train, cfg.batch_size, cfg.drop_last) // cfg.batch_size))

    @classmethod
    def steps(cls, cfg, n_train: int) -> int:
        """How many steps (calls of `train_step`, one per batch) `fit` takes on `n_train` images with settings
        `cfg`: the budget in the unit the convergence study counts, so that it reads straight off its curves.
        `budget_scale` takes that share of it, rounded up (one step at least)."""
        full = cls.epochs(cfg, n_train) * cls.steps_per_epoch(cfg, n_train)
        return full if cfg.budget_scale == 1 else max(1, math.ceil(cfg.budget_scale * full))

    def epoch_metrics(self, epoch: int, last: bool, train: ImageSet, val: ImageSet) -> dict[str, float]:
        """Logged after every epoch; `val_score` (mean score of the normal validation slice) selects."""
        return {"val_score": float(self.score(val).mean()) if len(val) else float("nan")}

    def extra_state(self) -> dict:
        """Training state beyond networks and optimisers (counters), for checkpoints."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # --- the loops --------------------------------------------------------------------------------

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    def precision(self):
        """The context a training step runs in: autocast to bfloat16 with `precision: bf16`, else nothing."""
        bf16 = self.config.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def _mode(self, train: bool) -> None:
        for net in self.nets.values():
            net.train(train)

    def learn(self, train: ImageSet, val: ImageSet, run) -> None:
        cfg = self.config
        x = train.x.to(self.device)
        # the budget in steps; a scaled budget (budget_scale) ends part-way through its last epoch
        total, per_epoch = self.steps(cfg, len(x)), self.steps_per_epoch(cfg, len(x))
        epochs = -(-total // per_epoch)
        with torch_threads(cfg.threads):
            for epoch in tqdm(range(run.resume(self), epochs), desc=self.name, unit="epoch", leave=False):
                # train: one pass over shuffled batches, the method's step on each
                self._mode(True)
                sums: dict[str, float] = {}
                counts: dict[str, int] = {}
                for step, idx in enumerate(batches(len(x), cfg.batch_size, shuffle=True, drop_last=cfg.drop_last)):
                    if epoch * per_epoch + step >= total:
                        break
                    with self.precision():
                        losses = self.train_step(self._input(x[idx]), epoch, step)
                    run.check_finite(losses, epoch, step)
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0.0) + value * len(idx)
                        counts[key] = counts.get(key, 0) + len(idx)
                # log: the epoch's mean losses and validation metrics; remember the best epoch
                metrics = {key: total / counts[key] for key, total in sums.items()}
                metrics.update(self.epoch_metrics(epoch, epoch == epochs - 1, train, val))
                run.check_validation(metrics, epoch, len(val))
                self._remember_if_best(epoch, metrics.get("val_score", float("nan")))
                run.end_epoch(self, epoch, metrics)
        if cfg.select == "best_val" and self.best is not None:
            for name, net in self.nets.items():
                net.load_state_dict(self.best["nets"][name])

    def _remember_if_best(self, epoch: int, val_score: float) -> None:
        if self.config.select != "best_val" or not math.isfinite(val_score):
            return
        if self.best is None or val_score < self.best["val_score"]:
            nets = {name: _copy(net.state_dict()) for name, net in self.nets.items()}
            self.best = {"epoch": epoch, "val_score": val_score, "nets": nets}

    def selected(self) -> dict:
        if self.best is None or self.config.select != "best_val":
            return {}
        return {"best_epoch": self.best["epoch"], "best_val_score": self.best["val_score"]}

    def _restore_selected(self, selected: dict) -> None:
        """After loading a model file: `selected()` says again which epoch the weights are from."""
        if selected:
            self.best = {"epoch": selected["best_epoch"], "val_score": selected["best_val_score"], "nets": None}

    @torch.no_grad()
    def map_batches(self, x: torch.Tensor, fn) -> list:
        """`fn` on eval-mode batches of `x`; the list of its results."""
        self._mode(False)
        out = []
        with torch_threads(self.config.threads):
            for idx in batches(len(x), self.config.score_batch_size, shuffle=False):
                out.append(fn(self._input(x[idx])))
        return out

    def score(self, images: ImageSet) -> np.ndarray:
        out = self.map_batches(images.x, lambda xb: self.score_batch(xb).detach().cpu())
        return torch.cat(out).double().numpy() if out else np.zeros(0, dtype=np.float64)

    # --- state ------------------------------------------------------------------------------------

    def model_state(self) -> dict:
        return {"nets": {name: net.state_dict() for name, net in self.nets.items()}, "selected": self.selected()}

    def load_model_state(self, state: dict) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state["nets"][name])
        self._restore_selected(state["selected"])

    def state_dict(self) -> dict:
        return {
            **self.model_state(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "best": self.best,
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.load_model_state(state)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            _match_layouts(opt)
        self.best = state["best"]
        self.load_extra_state(state["extra"])
