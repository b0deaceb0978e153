"""ADAE: adversarial dual autoencoders (Vu et al. 2019); the maths is in `model.py`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import ADAM_IMPLS, AdamConfig
from ganad.schema import Bool, Float, Int

BALANCE = ("lr", "gaia", "began", "none")
# what scores an image (model.py): the paper's ||x - D(G(x))||, G's or D's own reconstruction error, or D's
# amplification of G's error, ||x - D(G(x))|| / ||x - G(x)||: the paper's claim that D fails on G(x) of anomalies
SCORES = ("d_of_g", "g", "d", "amplification")


class Config(AdamConfig):
    latent_dim: Int = Field(32, gt=0)
    width: Int = Field(64, gt=0)
    epochs: Int = Field(100, gt=0)
    lr: Float = Field(1e-5, gt=0)
    drop_last: Bool = True  # every BatchNorm batch has batch_size images
    # balancing (model.py): the paper's learning-rate sigmoid, GAIA's full balancing, BEGAN's k_t, or none
    balance: Literal[BALANCE] = "lr"
    slope: Float = Field(20.0, gt=0)
    slope_units: Literal["unit", "image"] = "unit"  # unit: errors of [0, 1] images, as GAIA's slope 20
    gate_sigma: Float = Field(0.5, gt=0)  # gaia: w rises once |X - D(X)| < gate_sigma |G(X) - D(G(X))|
    gate_max: Float = Field(0.9, gt=0, le=1)
    began_gamma: Float = Field(0.5, gt=0)
    began_lambda: Float = Field(0.001, gt=0)
    bn: Literal["separate", "joint"] = "separate"  # how D's BatchNorm sees real and generated batches
    # the first `warmup` updates train both networks at lr without balancing (weight 1 on D's fake term): G
    # starts near one constant image that D reconstructs far better than digits, which stalls the balanced rates
    warmup: Int = Field(0, ge=0)
    # weight of G's own reconstruction |X - G(X)| in L_G (the paper: 1); the adversarial term keeps weight 1
    gen_weight: Float = Field(1.0, gt=0)
    score: Literal[SCORES] = "d_of_g"
    adam: Literal[ADAM_IMPLS] = "fused"
    # Speed only: what is computed stays the same (channels_last and compile change float rounding).
    channels_last: Bool = True
    compile: Bool = False
