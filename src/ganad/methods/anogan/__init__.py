"""AnoGAN (Schlegl et al. 2017): a DCGAN and a per-image latent search; the maths is in `model.py`,
the batched search in `search.py`."""

from typing import Literal

from pydantic import Field, field_validator

from ganad.methods.configs import AdamConfig
from ganad.schema import Bool, Float, Fraction, Int

WEIGHTINGS = ("feature", "residual")
SCHEDULE = "a list of [until, lr] pairs, 0 < until <= 1 increasing to 1, lr > 0"


def _is_schedule(pieces: list) -> bool:
    if not pieces or any(len(piece) != 2 for piece in pieces):
        return False
    ends = [end for end, _ in pieces]
    return all(0 < end <= 1 and lr > 0 for end, lr in pieces) and ends == sorted(set(ends)) and ends[-1] == 1


class Config(AdamConfig):
    # DCGAN (the papers: latent 100, width 64, Adam 2e-4 betas (0.5, 0.999), BCE, non-saturating G loss)
    latent_dim: Int = Field(100, gt=0)
    width: Int = Field(64, gt=0)
    epochs: Int = Field(25, gt=0)  # not stated by ADAE or ADGAN; DCGAN-scale training
    drop_last: Bool = True  # every BatchNorm batch has batch_size images
    # latent search per test image: (1 - lam) |x - G(z)|_1 + lam |f(x) - f(G(z))|_1, Adam on z
    lam: Fraction = 0.1
    weighting: Literal[WEIGHTINGS] = "feature"  # feature: lam on the feature term (AnoGAN); residual: ALAD's
    search_steps: Int = Field(500, gt=0)
    # Adam's learning rate over the search, [[until, lr], ...] with `until` a fraction of search_steps
    # (EGBAD's AnoGAN code: 0.01 up to step 200 of 500, 0.001 up to 300, then 0.0005)
    search_lr: list[list[Float]] = Field([[0.4, 0.01], [0.6, 0.001], [1.0, 0.0005]], description=SCHEDULE)
    search_beta1: Fraction = 0.9
    search_beta2: Fraction = 0.999
    search_seed: Int = Field(0, ge=0)  # initial latents: truncated N(0, I), drawn per image from this seed
    search_batch_size: Int = Field(1024, gt=0)  # images searched together (one shared G/D pass per step)
    val_images: Int = Field(16, gt=0)  # normal validation images searched after every epoch (logged only)
    init_truncation: Float = Field(2.0, gt=0)  # initial z cut at +-init_truncation (TensorFlow's truncated_normal)
    channels_last: Bool = True  # speed only: the search's memory layout (changes float rounding)

    @field_validator("search_lr")
    @classmethod
    def _schedule(cls, pieces: list) -> list:
        if not _is_schedule(pieces):
            raise ValueError(f"must be {SCHEDULE}")
        return pieces
