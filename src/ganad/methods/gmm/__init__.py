"""Gaussian mixture on PCA features of the pixels (ADGAN Table 1); the maths is in `model.py`."""

from dataclasses import dataclass

from ...checks import PAPER_COMPONENTS, FeatureConfig, one_of, positive, positive_int, positive_ints


@dataclass
class Config(FeatureConfig):
    pca_criterion: str = one_of("detector", ["detector", "ppca"])
    components: list = positive_ints(PAPER_COMPONENTS)
    covariance_type: str = one_of("diag", ["full", "tied", "diag", "spherical"])
    reg_covar: float = positive(1e-6)
    max_iter: int = positive_int(100)
