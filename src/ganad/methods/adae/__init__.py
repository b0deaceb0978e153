"""ADAE: adversarial dual autoencoders (Vu et al. 2019); the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import ADAM_IMPLS, AdamConfig, flag, one_of, positive, positive_int, unit_interval

BALANCE = ("lr", "gaia", "began", "none")


@dataclass
class Config(AdamConfig):
    latent_dim: int = positive_int(32)
    width: int = positive_int(64)
    epochs: int = positive_int(100)
    lr: float = positive(1e-5)
    drop_last: bool = flag(True)  # every BatchNorm batch has batch_size images
    # balancing (model.py): the paper's learning-rate sigmoid, GAIA's full balancing, BEGAN's k_t, or none
    balance: str = one_of("lr", BALANCE)
    slope: float = positive(20.0)
    slope_units: str = one_of("unit", ("unit", "image"))  # unit: errors of [0, 1] images, as GAIA's slope 20
    gate_sigma: float = positive(0.5)  # gaia: w rises once |X - D(X)| < gate_sigma |G(X) - D(G(X))|
    gate_max: float = unit_interval(0.9)
    began_gamma: float = positive(0.5)
    began_lambda: float = positive(0.001)
    bn: str = one_of("separate", ("separate", "joint"))  # how D's BatchNorm sees real and generated batches
    adam: str = one_of("fused", ADAM_IMPLS)
    # Speed only: what is computed stays the same (channels_last and compile change float rounding).
    channels_last: bool = flag(True)
    compile: bool = flag(False)
