"""One-class SVM on PCA features of ImageNet AlexNet's last convolutional block (ADGAN Table 1)."""

from dataclasses import dataclass

from ...checks import AlexNetOptions, OCSVMConfig


@dataclass
class Config(AlexNetOptions, OCSVMConfig):
    pass
