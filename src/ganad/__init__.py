"""ganad: GAN-based image anomaly detection, reproduced end to end."""

__version__ = "0.1.0"
