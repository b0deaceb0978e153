"""Isolation Forest on PCA features of the pixels (ADGAN Table 1); the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import FeatureConfig, positive_int


@dataclass
class Config(FeatureConfig):
    n_estimators: int = positive_int(100)
