# Docs: docs/methods/ocsvm.md (what it computes, its settings, deviations from its paper, budgets).
"""One-class SVM on PCA features of the [-1, 1] pixels: `ganad.methods.common.features.OCSVMDetector` as it stands."""

from ganad.methods.common.features.detectors import OCSVMDetector
from ganad.methods.ocsvm import Config


class OCSVM(OCSVMDetector):
    name = "ocsvm"
    Config = Config
