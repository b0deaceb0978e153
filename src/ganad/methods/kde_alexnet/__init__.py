"""KDE on PCA features of ImageNet AlexNet's last convolutional block (ADGAN Table 1)."""

from dataclasses import dataclass

from ...checks import AlexNetOptions, KDEConfig


@dataclass
class Config(AlexNetOptions, KDEConfig):
    pass
