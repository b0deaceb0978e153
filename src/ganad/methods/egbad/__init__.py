"""EGBAD (Zenati et al. 2018): a BiGAN scored by reconstruction and discriminator features; the maths is
in `model.py` and the BiGAN in `ganad.bigan`."""

from dataclasses import dataclass

from ...checks import AdamConfig, flag, fraction, one_of, positive, positive_int


@dataclass
class Config(AdamConfig):
    # EGBAD's MNIST code: latent 200, batch 100, Adam 1e-5 beta1 0.5, D hidden 1024 / z branch 512, dropout 0.5
    latent_dim: int = positive_int(200)
    width: int = positive_int(64)
    epochs: int = positive_int(25)  # EGBAD's --nb_epochs has no default; ours
    batch_size: int = positive_int(100)
    lr: float = positive(1e-5)
    drop_last: bool = flag(True)
    d_hidden: int = positive_int(1024)
    z_hidden: int = positive_int(512)
    dropout: float = fraction(0.5)
    ema_decay: float = fraction(0.999)  # weights scored: their moving average (0: the trained weights)
    # score: (1 - alpha) |x - G(E(x))|_1 + alpha * dis, dis = |f(x, E(x)) - f(G(E(x)), E(x))|_1 (fm) or
    # BCE(D(G(E(x)), E(x)), 1) (cross_e)
    alpha: float = fraction(0.1)
    score: str = one_of("fm", ("fm", "cross_e"))
