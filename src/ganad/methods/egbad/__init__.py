"""EGBAD (Zenati et al. 2018): a BiGAN scored by reconstruction and discriminator features; the maths is
in `model.py` and the BiGAN in `ganad.methods.common.bigan`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import AdamConfig
from ganad.schema import Bool, Float, Fraction, Int


class Config(AdamConfig):
    # EGBAD's MNIST code: latent 200, batch 100, Adam 1e-5 beta1 0.5, D hidden 1024 / z branch 512, dropout 0.5
    latent_dim: Int = Field(200, gt=0)
    width: Int = Field(64, gt=0)
    epochs: Int = Field(25, gt=0)  # EGBAD's --nb_epochs has no default; ours
    batch_size: Int = Field(100, gt=0)
    lr: Float = Field(1e-5, gt=0)
    drop_last: Bool = True
    d_hidden: Int = Field(1024, gt=0)
    z_hidden: Int = Field(512, gt=0)
    dropout: Fraction = 0.5
    ema_decay: Fraction = 0.999  # weights scored: their moving average (0: the trained weights)
    # score: (1 - alpha) |x - G(E(x))|_1 + alpha * dis, dis = |f(x, E(x)) - f(G(E(x)), E(x))|_1 (fm) or
    # BCE(D(G(E(x)), E(x)), 1) (cross_e)
    alpha: Fraction = 0.1
    score: Literal["fm", "cross_e"] = "fm"
