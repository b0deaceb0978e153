"""KDE on PCA features of ImageNet AlexNet's last convolutional block (ADGAN Table 1)."""

from ganad.methods.configs import AlexNetOptions, KDEConfig


class Config(AlexNetOptions, KDEConfig):
    pass
