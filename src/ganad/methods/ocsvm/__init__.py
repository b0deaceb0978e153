"""One-class SVM on PCA features of the pixels (ADGAN Table 1); the detector is
`ganad.methods.common.features.OCSVMDetector`."""

from ganad.methods.configs import OCSVMConfig


class Config(OCSVMConfig):
    pass
