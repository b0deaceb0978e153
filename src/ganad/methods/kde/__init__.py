"""KDE on PCA features of the pixels (ADGAN Table 1); the detector is `ganad.features.KDEDetector`."""

from dataclasses import dataclass

from ...checks import KDEConfig


@dataclass
class Config(KDEConfig):
    pass
