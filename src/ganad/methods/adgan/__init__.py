"""ADGAN (Deecke et al. 2018): a WGAN generator searched per test image; the maths is in `model.py`,
the batched search in `search.py` and its CPU kernels in `kernels.py`."""

from dataclasses import dataclass

from ...checks import (NetConfig, auto_or_positive_int, flag, fraction, non_negative_int, one_of, positive,
                       positive_int)


@dataclass
class Config(NetConfig):
    # GAN (paper: DCGAN, latent 256, WGAN)
    latent_dim: int = positive_int(256)
    width: int = positive_int(64)
    objective: str = one_of("wgan", ("wgan", "wgan_gp"))
    epochs: int = positive_int(25)
    min_steps: int = non_negative_int(0)  # generator steps at least: small training sets get more epochs
    drop_last: bool = flag(True)  # the critic sees full batches only
    n_critic: int = positive_int(5)
    lr: float = positive(5e-5)  # wgan: RMSprop, both nets
    clip: float = positive(0.01)  # wgan: critic weights clipped to [-clip, clip]
    gp_lr: float = positive(1e-4)  # wgan_gp: Adam, both nets
    gp_beta1: float = fraction(0.5)
    gp_beta2: float = fraction(0.9)
    gp_lambda: float = positive(10.0)
    # latent search (Algorithm 1; paper: 64 seeds, 5 steps, Adam 0.25 on z and 5e-5 on theta)
    n_seed: int = positive_int(64)
    k: int = positive_int(5)
    lr_z: float = positive(0.25)
    lr_theta: float = positive(5e-5)
    search_beta1: float = fraction(0.5)
    search_beta2: float = fraction(0.999)
    update_params: bool = flag(True)
    pairs_per_batch: int | str = auto_or_positive_int("auto")  # auto: a few on a CPU, many on a GPU
    search_workers: int | str = auto_or_positive_int("auto")  # auto: torch's thread count on a CPU, 1 on a GPU
    search_seed: int = non_negative_int(0)
    score: str = one_of("reconstruction", ("reconstruction", "critic", "prior"))
    val_images: int = positive_int(16)  # normal validation images searched after every epoch (logged only)
