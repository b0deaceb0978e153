# Docs: docs/methods/ocsvm_alexnet.md (what it computes, its settings, deviations from its paper, budgets).
"""One-class SVM on AlexNet features: `ganad.methods.common.features.OCSVMDetector` with `AlexNetFeatures`."""

from ganad.methods.common.features.alexnet import AlexNetFeatures
from ganad.methods.common.features.detectors import OCSVMDetector
from ganad.methods.ocsvm_alexnet import Config


class OCSVMAlexNet(AlexNetFeatures, OCSVMDetector):
    name = "ocsvm_alexnet"
    Config = Config
