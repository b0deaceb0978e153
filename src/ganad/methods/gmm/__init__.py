"""Gaussian mixture on PCA features of the pixels (ADGAN Table 1); the maths is in `model.py`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import PAPER_COMPONENTS, FeatureConfig
from ganad.schema import Float, Int, PositiveInt


class Config(FeatureConfig):
    pca_criterion: Literal["detector", "ppca"] = "detector"
    components: list[PositiveInt] = Field(PAPER_COMPONENTS, min_length=1)
    covariance_type: Literal["full", "tied", "diag", "spherical"] = "diag"
    reg_covar: Float = Field(1e-6, gt=0)
    max_iter: Int = Field(100, gt=0)
