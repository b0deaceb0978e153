# Docs: docs/methods/iforest.md (what it computes, its settings, deviations from its paper, budgets).
"""Isolation Forest on PCA features of the pixels (ADGAN 4.2)."""

from sklearn.ensemble import IsolationForest

from ganad.methods.common.features.detectors import FeatureDetector
from ganad.methods.iforest import Config


class IForest(FeatureDetector):
    """Isolation Forest with scikit-learn's defaults (the paper found it stable); score = -score_samples."""

    name = "iforest"
    Config = Config

    def fit_detector(self, z, seed):
        forest = IsolationForest(n_estimators=self.config.n_estimators, random_state=seed).fit(z)
        return forest, {}

    def detector_score(self, detector, z):
        return -detector.score_samples(z)
