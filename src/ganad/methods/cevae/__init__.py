"""ceVAE (Zimmerer et al. 2018): a VAE that also reconstructs the clean image from a copy with random
squares erased, through the same encoder and decoder; the maths is in `model.py`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import AdamConfig
from ganad.schema import Float, Fraction, Int

SCORES = ("combined", "rec", "kl")


class Config(AdamConfig):
    # Training as the MOOD ceVAE code (MIC-DKFZ/mood, example_algos/algorithms/ce_vae.py): Adam 1e-4 with
    # torch's betas, 20 epochs, latent 128 (its command line); batch 64 as the authors' MICCAI-2019 brain
    # code (MOOD's 16 goes with its 128x128 inputs) and ADAE's brain experiment.
    latent_dim: Int = Field(128, gt=0)
    # The DCGAN backbone at width 16 has the MICCAI-2019 encoder's first three layers (16, 32, 64 channels);
    # MOOD's (16, 64, 256, 1024) grows four-fold per layer, which the backbone does not express.
    width: Int = Field(16, gt=0)
    epochs: Int = Field(20, gt=0)
    lr: Float = Field(1e-4, gt=0)
    beta1: Fraction = 0.9
    # loss = (1 - ce_factor) * (beta * KL + theta * L1(x_hat, x)) + ce_factor * L1(x_hat_ce, x)
    ce_factor: Float = Field(0.5, ge=0, le=1)  # 0: VAE, 1: CE
    beta: Float = Field(0.01, ge=0)
    theta: Float = Field(1.0, gt=0)  # MOOD's fixed theta (its GECO adaptation is off by default and not built)
    # image score with z = mu: beta * KL + theta * L1 (combined, MOOD's sample score), or one term alone
    score: Literal[SCORES] = "combined"
