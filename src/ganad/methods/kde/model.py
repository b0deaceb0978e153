# Docs: docs/methods/kde.md (what it computes, its settings, deviations from its paper, budgets).
"""KDE on PCA features of the [-1, 1] pixels: `ganad.methods.common.features.KDEDetector` as it stands."""

from ganad.methods.common.features.detectors import KDEDetector
from ganad.methods.kde import Config


class KDE(KDEDetector):
    name = "kde"
    Config = Config
