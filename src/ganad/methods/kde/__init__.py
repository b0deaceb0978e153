"""KDE on PCA features of the pixels (ADGAN Table 1); the detector is `ganad.methods.common.features.KDEDetector`."""

from ganad.methods.configs import KDEConfig


class Config(KDEConfig):
    pass
