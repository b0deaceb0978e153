"""One-class SVM on AlexNet features: `ganad.features.OCSVMDetector` with `AlexNetFeatures`."""

from ...features import AlexNetFeatures, OCSVMDetector
from . import Config


class OCSVMAlexNet(AlexNetFeatures, OCSVMDetector):
    name = "ocsvm_alexnet"
    Config = Config
