"""What the classical baselines of ADGAN's Table 1 share: features -> PCA -> detector.

`detectors` holds the detector base and the KDE and OC-SVM detectors (each used by a pixel
and an AlexNet method), `kde` the kernel-density numerics, `alexnet` the pretrained
feature extractor, and `skops_io` how scikit-learn objects are kept in model files.
"""

from ganad.methods.common.features.alexnet import AlexNetFeatures, WeightsUnavailable
from ganad.methods.common.features.detectors import FeatureDetector, KDEDetector, OCSVMDetector
from ganad.methods.common.features.kde import evangelista_gamma, gaussian_kde_logpdf, kde_cv_loglik

__all__ = [
    "AlexNetFeatures",
    "FeatureDetector",
    "KDEDetector",
    "OCSVMDetector",
    "WeightsUnavailable",
    "evangelista_gamma",
    "gaussian_kde_logpdf",
    "kde_cv_loglik",
]
