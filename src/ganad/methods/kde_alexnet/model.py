# Docs: docs/methods/kde_alexnet.md (what it computes, its settings, deviations from its paper, budgets).
"""KDE on AlexNet features: `ganad.methods.common.features.KDEDetector` with `AlexNetFeatures`."""

from ganad.methods.common.features.alexnet import AlexNetFeatures
from ganad.methods.common.features.detectors import KDEDetector
from ganad.methods.kde_alexnet import Config


class KDEAlexNet(AlexNetFeatures, KDEDetector):
    name = "kde_alexnet"
    Config = Config
