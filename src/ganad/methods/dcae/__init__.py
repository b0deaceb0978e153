"""DCAE: a DCGAN-shaped convolutional autoencoder (ADGAN Table 1); the maths is in `model.py`."""

from ganad.methods.configs import AdamConfig


class Config(AdamConfig):
    pass  # the shared settings of Adam-trained networks (ganad.methods.configs.AdamConfig) are all DCAE needs
