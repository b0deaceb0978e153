"""VAE: the DCAE backbone as a variational autoencoder (ADGAN Table 1); the maths is in `model.py`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import AdamConfig
from ganad.schema import Int, PositiveFloat


class Config(AdamConfig):
    obs_std: Literal["optimal"] | PositiveFloat = "optimal"
    score_samples: Int = Field(10, gt=0)
    score_seed: Int = Field(0, ge=0)
