"""VAE: the DCAE backbone as a variational autoencoder (ADGAN Table 1); the maths is in `model.py`."""

import math
from dataclasses import dataclass, field

from ...checks import AdamConfig, is_number, non_negative_int, positive_int


def _valid_obs_std(v) -> bool:
    return v == "optimal" or (is_number(v) and math.isfinite(v) and v > 0)


@dataclass
class Config(AdamConfig):
    obs_std: float | str = field(default="optimal", metadata={"check": _valid_obs_std,
                                                               "rule": "'optimal' or a positive number"})
    score_samples: int = positive_int(10)
    score_seed: int = non_negative_int(0)
