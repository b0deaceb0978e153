"""ADAE: adversarial dual autoencoders (Vu et al. 2019); the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import ADAM_IMPLS, AdamConfig, flag, one_of, positive, positive_int


@dataclass
class Config(AdamConfig):
    latent_dim: int = positive_int(32)
    width: int = positive_int(64)
    epochs: int = positive_int(100)
    lr: float = positive(1e-5)
    drop_last: bool = flag(True)  # every BatchNorm batch has batch_size images
    balance: bool = flag(True)  # GAIA's balanced learning rates
    slope: float = positive(20.0)
    adam: str = one_of("fused", ADAM_IMPLS)
    # Speed only: what is computed stays the same (channels_last and compile change float rounding).
    channels_last: bool = flag(True)
    compile: bool = flag(False)
