"""KDE on PCA features of the [-1, 1] pixels: `ganad.features.KDEDetector` as it stands."""

from ...features import KDEDetector
from . import Config


class KDE(KDEDetector):
    name = "kde"
    Config = Config
