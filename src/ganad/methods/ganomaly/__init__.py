"""GANomaly (Akcay et al. 2018): an encoder-decoder-encoder generator and a DCGAN discriminator; the
maths is in `model.py`."""

from pydantic import Field

from ganad.methods.configs import AdamConfig
from ganad.schema import Bool, Float, Int


class Config(AdamConfig):
    # the reference code's defaults (options.py): nz 100, ngf = ndf = 64, 15 epochs, batch 64, Adam 2e-4 (0.5, 0.999)
    latent_dim: Int = Field(100, gt=0)
    width: Int = Field(64, gt=0)
    epochs: Int = Field(15, gt=0)
    drop_last: Bool = True  # the reference drops the last incomplete training batch
    # generator loss: w_adv * feature matching on D's features + w_con * |x - x_hat|_1 + w_enc * |z - z_hat|_2^2
    w_adv: Float = Field(1.0, ge=0)
    w_con: Float = Field(50.0, ge=0)
    w_enc: Float = Field(1.0, ge=0)
    # the reference re-initialises D whenever its loss falls below this (reinit_d: false turns it off)
    reinit_d: Bool = True
    reinit_threshold: Float = Field(1e-5, gt=0)
