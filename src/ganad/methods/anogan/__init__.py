"""AnoGAN (Schlegl et al. 2017): a DCGAN and a per-image latent search; the maths is in `model.py`,
the batched search in `search.py`."""

from dataclasses import dataclass

from ...checks import AdamConfig, flag, fraction, is_number, non_negative_int, one_of, positive, positive_int, rule

WEIGHTINGS = ("feature", "residual")


def _is_schedule(v) -> bool:
    if not isinstance(v, (list, tuple)) or not v:
        return False
    ends = []
    for piece in v:
        if not (isinstance(piece, (list, tuple)) and len(piece) == 2 and all(is_number(x) for x in piece)):
            return False
        end, lr = piece
        if not (0 < end <= 1 and 0 < lr < float("inf")):
            return False
        ends.append(end)
    return ends == sorted(set(ends)) and ends[-1] == 1


def lr_schedule(default):
    """[[until, lr], ...]: Adam's learning rate `lr` up to the fraction `until` of the search's steps."""
    return rule(default, _is_schedule, "a list of [until, lr] pairs, 0 < until <= 1 increasing to 1, lr > 0",
                factory=True)


@dataclass
class Config(AdamConfig):
    # DCGAN (the papers: latent 100, width 64, Adam 2e-4 betas (0.5, 0.999), BCE, non-saturating G loss)
    latent_dim: int = positive_int(100)
    width: int = positive_int(64)
    epochs: int = positive_int(25)  # not stated by ADAE or ADGAN; DCGAN-scale training
    drop_last: bool = flag(True)  # every BatchNorm batch has batch_size images
    # latent search per test image: (1 - lam) |x - G(z)|_1 + lam |f(x) - f(G(z))|_1, Adam on z
    lam: float = fraction(0.1)
    weighting: str = one_of("feature", WEIGHTINGS)  # feature: lam on the feature term (AnoGAN); residual: ALAD's
    search_steps: int = positive_int(500)
    # Adam's learning rate over the search, [[until, lr], ...] with `until` a fraction of search_steps
    # (EGBAD's AnoGAN code: 0.01 up to step 200 of 500, 0.001 up to 300, then 0.0005)
    search_lr: list = lr_schedule([[0.4, 0.01], [0.6, 0.001], [1.0, 0.0005]])
    search_beta1: float = fraction(0.9)
    search_beta2: float = fraction(0.999)
    search_seed: int = non_negative_int(0)  # initial latents: truncated N(0, I), drawn per image from this seed
    search_batch_size: int = positive_int(1024)  # images searched together (one shared G/D pass per step)
    val_images: int = positive_int(16)  # normal validation images searched after every epoch (logged only)
    init_truncation: float = positive(2.0)  # initial z cut at +-init_truncation (TensorFlow's truncated_normal)
    channels_last: bool = flag(True)  # speed only: the search's memory layout (changes float rounding)
