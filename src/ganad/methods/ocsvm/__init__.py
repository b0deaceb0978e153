"""One-class SVM on PCA features of the pixels (ADGAN Table 1); the detector is `ganad.features.OCSVMDetector`."""

from dataclasses import dataclass

from ...checks import OCSVMConfig


@dataclass
class Config(OCSVMConfig):
    pass
