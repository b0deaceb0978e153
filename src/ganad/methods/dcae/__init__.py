"""DCAE: a DCGAN-shaped convolutional autoencoder (ADGAN Table 1); the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import AdamConfig


@dataclass
class Config(AdamConfig):
    pass  # the shared settings of Adam-trained networks (ganad.checks.AdamConfig) are all DCAE needs
