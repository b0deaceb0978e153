"""One-class SVM on PCA features of the [-1, 1] pixels: `ganad.features.OCSVMDetector` as it stands."""

from ...features import OCSVMDetector
from . import Config


class OCSVM(OCSVMDetector):
    name = "ocsvm"
    Config = Config
