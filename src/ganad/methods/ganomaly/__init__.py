"""GANomaly (Akcay et al. 2018): an encoder-decoder-encoder generator and a DCGAN discriminator; the
maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import AdamConfig, flag, non_negative, positive, positive_int


@dataclass
class Config(AdamConfig):
    # the reference code's defaults (options.py): nz 100, ngf = ndf = 64, 15 epochs, batch 64, Adam 2e-4 (0.5, 0.999)
    latent_dim: int = positive_int(100)
    width: int = positive_int(64)
    epochs: int = positive_int(15)
    drop_last: bool = flag(True)  # the reference drops the last incomplete training batch
    # generator loss: w_adv * feature matching on D's features + w_con * |x - x_hat|_1 + w_enc * |z - z_hat|_2^2
    w_adv: float = non_negative(1.0)
    w_con: float = non_negative(50.0)
    w_enc: float = non_negative(1.0)
    # the reference re-initialises D whenever its loss falls below this (reinit_d: false turns it off)
    reinit_d: bool = flag(True)
    reinit_threshold: float = positive(1e-5)
