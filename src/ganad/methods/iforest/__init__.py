"""Isolation Forest on PCA features of the pixels (ADGAN Table 1); the maths is in `model.py`."""

from pydantic import Field

from ganad.methods.configs import FeatureConfig
from ganad.schema import Int


class Config(FeatureConfig):
    n_estimators: Int = Field(100, gt=0)
