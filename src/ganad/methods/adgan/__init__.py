"""ADGAN (Deecke et al. 2018): a WGAN generator searched per test image; the maths is in `model.py`,
the batched search in `search.py` and its CPU kernels in `kernels.py`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import NetConfig
from ganad.schema import Bool, Float, Fraction, Int, PositiveInt


class Config(NetConfig):
    # GAN (paper: DCGAN, latent 256, WGAN)
    latent_dim: Int = Field(256, gt=0)
    width: Int = Field(64, gt=0)
    objective: Literal["wgan", "wgan_gp"] = "wgan"
    epochs: Int = Field(25, gt=0)
    min_steps: Int = Field(0, ge=0)  # generator steps at least: small training sets get more epochs
    drop_last: Bool = True  # the critic sees full batches only
    n_critic: Int = Field(5, gt=0)
    lr: Float = Field(5e-5, gt=0)  # wgan: RMSprop, both nets
    clip: Float = Field(0.01, gt=0)  # wgan: critic weights clipped to [-clip, clip]
    gp_lr: Float = Field(1e-4, gt=0)  # wgan_gp: Adam, both nets
    gp_beta1: Fraction = 0.5
    gp_beta2: Fraction = 0.9
    gp_lambda: Float = Field(10.0, gt=0)
    # latent search (Algorithm 1; paper: 64 seeds, 5 steps, Adam 0.25 on z and 5e-5 on theta)
    n_seed: Int = Field(64, gt=0)
    k: Int = Field(5, gt=0)
    lr_z: Float = Field(0.25, gt=0)
    lr_theta: Float = Field(5e-5, gt=0)
    search_beta1: Fraction = 0.5
    search_beta2: Fraction = 0.999
    update_params: Bool = True
    pairs_per_batch: Literal["auto"] | PositiveInt = "auto"  # auto: a few on a CPU, many on a GPU
    search_workers: Literal["auto"] | PositiveInt = "auto"  # auto: torch's thread count on a CPU, 1 on a GPU
    search_seed: Int = Field(0, ge=0)
    score: Literal["reconstruction", "critic", "prior"] = "reconstruction"
    val_images: Int = Field(16, gt=0)  # normal validation images searched after every epoch (logged only)
