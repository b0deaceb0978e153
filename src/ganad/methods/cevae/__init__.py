"""ceVAE (Zimmerer et al. 2018): a VAE that also reconstructs the clean image from a copy with random
squares erased, through the same encoder and decoder; the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import AdamConfig, fraction, is_number, non_negative, one_of, positive, positive_int, rule

SCORES = ("combined", "rec", "kl")


@dataclass
class Config(AdamConfig):
    # Training as the MOOD ceVAE code (MIC-DKFZ/mood, example_algos/algorithms/ce_vae.py): Adam 1e-4 with
    # torch's betas, 20 epochs, latent 128 (its command line); batch 64 as the authors' MICCAI-2019 brain
    # code (MOOD's 16 goes with its 128x128 inputs) and ADAE's brain experiment.
    latent_dim: int = positive_int(128)
    # The DCGAN backbone at width 16 has the MICCAI-2019 encoder's first three layers (16, 32, 64 channels);
    # MOOD's (16, 64, 256, 1024) grows four-fold per layer, which the backbone does not express.
    width: int = positive_int(16)
    epochs: int = positive_int(20)
    lr: float = positive(1e-4)
    beta1: float = fraction(0.9)
    # loss = (1 - ce_factor) * (beta * KL + theta * L1(x_hat, x)) + ce_factor * L1(x_hat_ce, x)
    ce_factor: float = rule(0.5, lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")  # 0: VAE, 1: CE
    beta: float = non_negative(0.01)
    theta: float = positive(1.0)  # MOOD's fixed theta (its GECO adaptation is off by default and not built)
    # image score with z = mu: beta * KL + theta * L1 (combined, MOOD's sample score), or one term alone
    score: str = one_of("combined", SCORES)
