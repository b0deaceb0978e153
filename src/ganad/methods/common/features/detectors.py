"""What the classical baselines of ADGAN's Table 1 share: features -> PCA -> detector.

The methods themselves (`kde`, `ocsvm`, `iforest`, `gmm` and the AlexNet
variants `kde_alexnet`, `ocsvm_alexnet`) are packages of `ganad.methods`; the code
that several of them use is here: the feature extractors, the PCA-size choice,
the KDE and OC-SVM detectors (each used by a pixel and an AlexNet method), and
the model state, which keeps scikit-learn objects through skops (no pickle).

Every method here is features -> PCA -> detector (`FeatureDetector`), fitted on
normal training images; everything chosen from data is chosen on the training
images or on the normal validation slice, never on test images or labels.

Features: the flattened [-1, 1] pixels (`kde`, `ocsvm`, `iforest`, `gmm`), or
the output of the final convolutional block of an ImageNet-pretrained AlexNet
(`kde_alexnet`, `ocsvm_alexnet`; see `AlexNetFeatures`).

PCA size: ADGAN varies it over {20, 40, ..., 100} and reports "the results for
which best performance on a small holdout set was attained", which needs
anomalies. We choose it from normal data only: the size `k` whose model gives
the highest mean log-likelihood of the normal validation images *in the full
feature space*. A density on k PCA coordinates cannot be compared across k by
itself, so it is completed with an isotropic Gaussian on the discarded
directions, of variance sigma^2 = (discarded training variance) / (d - k), the
maximum-likelihood value of probabilistic PCA (Tipping & Bishop); PCA is a
rotation, so the product is a proper density on R^d:

    log p(x) = log p_k(z) - (d - k)/2 log(2 pi sigma^2) - ||x - x_k||^2 / (2 sigma^2)

where z are the k PCA coordinates and x_k the PCA reconstruction. p_k is, by
`pca_criterion`: `detector` (default for `kde` and `gmm`), the fitted
detector's own density, so the detector is fitted at every size; or `ppca`
(the only choice for `ocsvm` and `iforest`, which have no density, and a cheaper
one for `kde`/`gmm`), probabilistic PCA's Gaussian N(0, diag(PCA variances)),
i.e. the held-out PPCA likelihood, after which the detector is fitted once. The
grid is capped at (training images - 1) and (feature size - 1); the curve of
the criterion over the grid is kept in the model file (`model["pca_curve"]`).

Scores: negative log density (KDE, GMM), negative decision function (OC-SVM),
negative `score_samples` (Isolation Forest): higher is more anomalous. Scores of
an image never depend on the other images scored with it.

Deviation from the paper: `max_train` subsamples the training images (seeded)
before anything is fitted; KDE and OC-SVM cost grows with the square of the
training size. `None` (the default) uses them all.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import skops.io
import torch
from sklearn.decomposition import PCA
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

from ganad.data.images import ImageSet
from ganad.methods.base import Method
from ganad.methods.common.features.kde import evangelista_gamma, gaussian_kde_logpdf, kde_cv_loglik
from ganad.methods.common.features.skops_io import canonical_skops, load_skops

# --- numerics ---


# --- AlexNet features ---


# --- the shared pipeline: features -> PCA (size chosen on validation) -> detector ---


class FeatureDetector(Method):
    """Features -> PCA -> detector, with the PCA size chosen by validation log-likelihood (module docstring)."""

    def __init__(self, config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.model: dict | None = None  # {"pca", "k", "sigma2", "detector", "selected"}

    # features; AlexNet variants override
    def features(self, images: ImageSet) -> np.ndarray:
        return images.x.flatten(1).numpy().astype(np.float64)

    @abstractmethod
    def fit_detector(self, z: np.ndarray, seed: int) -> tuple[object, dict]:
        """Fit on training PCA coordinates; return the detector and the values it chose."""

    @abstractmethod
    def detector_score(self, detector, z: np.ndarray) -> np.ndarray:
        """Higher = more anomalous."""

    def detector_loglik(self, detector, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _seed(self) -> int:
        return int(self.config.seed) if self.config.seed is not None else int(np.random.randint(2**31 - 1))

    def learn(self, train: ImageSet, val: ImageSet, run) -> None:
        if run.resume(self) > 0 and self.model is not None:
            return
        cfg = self.config
        seed = self._seed()
        rng = np.random.default_rng(seed)
        if cfg.max_train is not None and len(train) > cfg.max_train:
            keep = np.sort(rng.choice(len(train), cfg.max_train, replace=False))
            train = ImageSet(train.x[keep], train.labels[keep], train.index[keep])
        x, v = self.features(train), self.features(val)
        with threadpool_limits(limits=cfg.blas_threads):
            self._fit_features(x, v, seed, run)

    def _fit_features(self, x: np.ndarray, v: np.ndarray, seed: int, run) -> None:
        cfg = self.config
        n, d = x.shape
        cap = max(1, min(n - 1, d - 1))
        sizes = sorted({min(int(k), cap) for k in cfg.pca_sizes})
        pca = PCA(n_components=max(sizes), svd_solver=self._pca_solver(n, d), random_state=seed).fit(x)
        total_var = float(x.var(0, ddof=1).sum())

        by_detector = cfg.pca_criterion == "detector"
        candidates = []
        for k in sizes:
            sigma2 = max((total_var - float(pca.explained_variance_[:k].sum())) / (d - k), 1e-12 * total_var)
            z = self._project(pca, k, x)
            detector, chosen = self.fit_detector(z, seed) if by_detector else (None, {})
            if len(v):
                zv = self._project(pca, k, v)
                sub = self.detector_loglik(detector, zv) if by_detector else self._ppca_loglik(pca, k, zv)
                crit = float(np.mean(sub + self._residual_loglik(pca, k, sigma2, v, zv)))
            else:  # no validation slice: nothing to choose with; keep the largest size
                crit = float(k)
            candidates.append((crit, k, sigma2, detector, chosen))
        crit, k, sigma2, detector, chosen = max(candidates, key=lambda c: c[0])
        if not by_detector:
            detector, chosen = self.fit_detector(self._project(pca, k, x), seed)
        selected = {
            "pca_size": int(k),
            "pca_val_loglik": round(crit, 3) if len(v) else None,
            "train_used": int(n),
            "seed": seed,
            **chosen,
        }
        self.model = {
            "pca": pca,
            "k": k,
            "sigma2": sigma2,
            "detector": detector,
            "selected": selected,
            "pca_curve": {int(c[1]): round(c[0], 3) for c in candidates},
        }
        val_scores = self._score_features(v) if len(v) else np.zeros(0)
        metrics = {"val_score_mean": float(val_scores.mean()) if len(v) else float("nan"), "pca_size": float(k)}
        if len(v):
            metrics["pca_val_loglik"] = crit
        run.end_epoch(self, 0, metrics)

    @staticmethod
    def _pca_solver(n: int, d: int) -> str:
        """Exact solvers where cheap: the d x d covariance's eigenvectors when n >= d, else the SVD;
        randomised SVD only for wide, large feature matrices (AlexNet's 9,216 features)."""
        if n >= d:
            return "covariance_eigh"
        return "full" if n <= 2000 else "randomized"

    @staticmethod
    def _project(pca: PCA, k: int, x: np.ndarray) -> np.ndarray:
        return (x - pca.mean_) @ pca.components_[:k].T

    @staticmethod
    def _ppca_loglik(pca: PCA, k: int, z: np.ndarray) -> np.ndarray:
        var = pca.explained_variance_[:k]
        return -0.5 * ((z**2 / var).sum(1) + np.log(2 * np.pi * var).sum())

    @staticmethod
    def _residual_loglik(pca: PCA, k: int, sigma2: float, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        d = x.shape[1]
        r = (x - pca.mean_) - z @ pca.components_[:k]
        return -0.5 * (d - k) * np.log(2 * np.pi * sigma2) - (r * r).sum(1) / (2 * sigma2)

    def _score_features(self, feats: np.ndarray) -> np.ndarray:
        m = self.model
        return self.detector_score(m["detector"], self._project(m["pca"], m["k"], feats)).astype(np.float64)

    def score(self, images: ImageSet) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: score() before fit() or load()")
        if len(images) == 0:
            return np.zeros(0)
        feats = self.features(images)
        with threadpool_limits(limits=self.config.blas_threads):
            return self._score_features(feats)

    def selected(self) -> dict:
        return dict(self.model["selected"]) if self.model else {}

    def state_dict(self) -> dict:
        return {"skops": canonical_skops(skops.io.dumps(self.model)) if self.model is not None else b""}

    def load_state_dict(self, state: dict) -> None:
        self.model = load_skops(state["skops"]) if state["skops"] else None


# --- the detectors that two methods share (pixels and AlexNet features) ---


class KDEDetector(FeatureDetector):
    """Gaussian KDE; bandwidth by 10-fold CV likelihood over 2^0 .. 2^4 step 2^0.5 (ADGAN 4.2).

    On raw (unwhitened) PCA coordinates by default: for [-1, 1] MNIST digits the
    leading coordinates have standard deviations ~5 and the 100th ~0.3, so the
    paper's grid 1..16 spans the nearest-neighbour distances. `standardize: true`
    scales each coordinate to unit training variance first. Score = -log density.
    """

    def fit_detector(self, z, seed):
        cfg = self.config
        scale = z.std(0, ddof=1) if cfg.standardize else np.ones(z.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        zs = z / scale
        folds = min(cfg.cv_folds, len(zs))
        cv = kde_cv_loglik(zs, cfg.bandwidths, folds, seed)
        j = int(np.argmax(cv))
        h = float(cfg.bandwidths[j])
        detector = {
            "train": zs,
            "scale": scale,
            "bandwidth": h,
            "log_scale": float(np.log(scale).sum()),
        }  # Jacobian, so that densities stay in z units
        return detector, {"bandwidth": h, "bandwidth_at_grid_edge": j in (0, len(cfg.bandwidths) - 1)}

    def detector_loglik(self, detector, z):
        zs = z / detector["scale"]
        return gaussian_kde_logpdf(detector["train"], zs, [detector["bandwidth"]])[:, 0] - detector["log_scale"]

    def detector_score(self, detector, z):
        return -self.detector_loglik(detector, z)


class OCSVMDetector(FeatureDetector):
    """One-class SVM, RBF kernel, nu = 0.1 (ADGAN 4.2); score = -decision_function.

    gamma: `evangelista` (default) is the automated tuning the paper cites
    (Evangelista et al. 2007; see `evangelista_gamma`), on the training features;
    `scale` is scikit-learn's heuristic 1 / (n_features * variance).
    """

    def fit_detector(self, z, seed):
        cfg = self.config
        gamma = evangelista_gamma(z, seed) if cfg.gamma == "evangelista" else 1.0 / (z.shape[1] * z.var())
        svm = OneClassSVM(kernel="rbf", nu=cfg.nu, gamma=gamma).fit(z)
        return svm, {"gamma": float(gamma)}

    def detector_score(self, detector, z):
        return -detector.decision_function(z)


# --- AlexNet variants ---


# --- loading scikit-learn state safely ---
