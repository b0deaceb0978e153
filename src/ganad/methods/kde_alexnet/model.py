"""KDE on AlexNet features: `ganad.features.KDEDetector` with `AlexNetFeatures`."""

from ...features import AlexNetFeatures, KDEDetector
from . import Config


class KDEAlexNet(AlexNetFeatures, KDEDetector):
    name = "kde_alexnet"
    Config = Config
