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

import io
import json
import socket
import zipfile
from abc import abstractmethod
from pathlib import Path

import numpy as np
import skops.io
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.svm import OneClassSVM
from threadpoolctl import threadpool_limits

from .images import ImageSet
from .methods.base import Method, MethodUnavailable
from .training import batches


# --- numerics ---

def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


def gaussian_kde_logpdf(train: np.ndarray, query: np.ndarray, bandwidths, chunk: int = 512) -> np.ndarray:
    """Exact Gaussian-KDE log density of each query row, one column per bandwidth.

    The estimator is scikit-learn's `KernelDensity(kernel="gaussian")`, computed
    exactly in log space. KernelDensity's tree sums lose the far-away kernel terms
    in high dimension (scikit-learn issue #7492): on 100 PCA features of MNIST it
    returned log densities ~100 nats too high for some images.
    """
    bandwidths = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    n, dim = train.shape
    out = np.empty((len(query), len(bandwidths)))
    norm = np.log(n) + 0.5 * dim * np.log(2 * np.pi * bandwidths ** 2)
    for start in range(0, len(query), chunk):
        d2 = _sq_dists(query[start:start + chunk], train)
        nearest = d2.min(1, keepdims=True)
        buf = np.empty_like(d2)
        for j, h in enumerate(bandwidths):  # log-sum-exp, shifted by the nearest kernel term
            c = 1.0 / (2 * h * h)
            np.subtract(nearest, d2, out=buf)
            buf *= c
            np.exp(buf, out=buf)
            out[start:start + chunk, j] = np.log(buf.sum(1)) - c * nearest[:, 0] - norm[j]
    return out


def kde_cv_loglik(z: np.ndarray, bandwidths, folds: int, seed: int) -> np.ndarray:
    """Held-out log-likelihood summed over K folds, per bandwidth: what GridSearchCV(KernelDensity) maximises."""
    total = np.zeros(len(bandwidths))
    for fit_idx, held_idx in KFold(folds, shuffle=True, random_state=seed).split(z):
        total += gaussian_kde_logpdf(z[fit_idx], z[held_idx], bandwidths).sum(0)
    return total


def evangelista_gamma(z: np.ndarray, seed: int, max_points: int = 1000, eps: float = 1e-6) -> float:
    """RBF gamma by Evangelista et al. (ICANN 2007), the automated tuning ADGAN cites for its OC-SVM.

    Maximises var(k) / (mean(k) + eps) over the off-diagonal entries k of the
    training kernel matrix: spread-out similarities, neither all ~0 (gamma too
    large) nor all ~1 (too small). Searched over gamma = 2^(j/4) / median squared
    distance, j = -32..32; training images only (at most `max_points` of them).
    """
    rng = np.random.default_rng(seed)
    if len(z) > max_points:
        z = z[rng.choice(len(z), max_points, replace=False)]
    d2 = _sq_dists(z, z)[np.triu_indices(len(z), 1)]
    med = float(np.median(d2)) or 1.0
    grid = 2.0 ** (np.arange(-32, 33) / 4) / med
    best, best_gamma = -np.inf, float(grid[0])
    for gamma in grid:
        k = np.exp(-gamma * d2)
        value = k.var() / (k.mean() + eps)
        if value > best:
            best, best_gamma = value, float(gamma)
    return best_gamma


# --- AlexNet features ---

class WeightsUnavailable(MethodUnavailable):
    """Pretrained weights a method needs are not on this machine and may not or could not be downloaded."""


ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"  # AlexNet_Weights.IMAGENET1K_V1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 30


def alexnet_weights_path(weights_dir: str | None) -> Path:
    folder = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    return folder / Path(ALEXNET_WEIGHTS_URL).name


def ensure_alexnet_weights(weights_dir: str | None, download: bool) -> Path:
    """The ImageNet AlexNet weights file, downloaded first when missing and `download` is on; raises
    WeightsUnavailable with the remedy when it cannot be had."""
    path = alexnet_weights_path(weights_dir)
    if not path.is_file():
        how = (f"put {ALEXNET_WEIGHTS_URL} at '{path}' (or set weights_dir to its folder), "
               "or set download: true on a machine that reaches download.pytorch.org")
        if not download:
            raise WeightsUnavailable(f"ImageNet AlexNet weights not found at '{path}' and download is off; {how}")
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(ALEXNET_WEIGHTS_URL, str(path), progress=False)
        except Exception as err:  # no network, proxy, timeout, partial file: all end the same way
            raise WeightsUnavailable(
                f"ImageNet AlexNet weights could not be downloaded ({type(err).__name__}: {err}); {how}") from err
        finally:
            socket.setdefaulttimeout(previous)
    return path


def load_alexnet(weights_dir: str | None, download: bool) -> torch.nn.Module:
    """torchvision's ImageNet AlexNet from the weights file; raises WeightsUnavailable when there is none."""
    import torchvision

    path = ensure_alexnet_weights(weights_dir, download)
    net = torchvision.models.alexnet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


@torch.no_grad()
def alexnet_features(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    """Output of AlexNet's final convolutional block (conv5, ReLU, max-pool): 256 x 6 x 6 = 9,216 values.

    [-1, 1] images -> [0, 1], grey repeated to 3 channels, bilinear resize to
    224 x 224, ImageNet normalisation.
    """
    net = net.to(device).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    out = []
    for idx in batches(len(images), batch_size, shuffle=False):
        x = (images[idx].to(device) + 1) / 2
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        out.append(net.features((x - mean) / std).flatten(1).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 9216))


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

    def fit(self, train: ImageSet, val: ImageSet, run) -> None:
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
        selected = {"pca_size": int(k), "pca_val_loglik": round(crit, 3) if len(v) else None,
                    "train_used": int(n), "seed": seed, **chosen}
        self.model = {"pca": pca, "k": k, "sigma2": sigma2, "detector": detector, "selected": selected,
                      "pca_curve": {int(c[1]): round(c[0], 3) for c in candidates}}
        val_scores = self._score_features(v) if len(v) else np.zeros(0)
        metrics = {"val_score_mean": float(val_scores.mean()) if len(v) else float("nan"),
                   "pca_size": float(k)}
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
        return -0.5 * ((z ** 2 / var).sum(1) + np.log(2 * np.pi * var).sum())

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
        detector = {"train": zs, "scale": scale, "bandwidth": h,
                    "log_scale": float(np.log(scale).sum())}  # Jacobian, so that densities stay in z units
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

class AlexNetFeatures:
    """Mixin: features from torchvision's ImageNet AlexNet instead of pixels (ADGAN 4.2).

    The weights are read from `weights_dir` (default: torch hub's cache); when
    they are missing and `download` is off, or the download fails, fit and score
    raise `WeightsUnavailable` with a one-line remedy. The network is loaded
    again on demand after `load` (it is not stored in the model file).
    """

    _alexnet = None

    @classmethod
    def prepare(cls, config) -> None:
        """Fetch the weights once, before any class (and any worker process) needs them."""
        ensure_alexnet_weights(config.weights_dir, config.download)

    def features(self, images: ImageSet) -> np.ndarray:
        if self._alexnet is None:
            self._alexnet = load_alexnet(self.config.weights_dir, self.config.download)
        return alexnet_features(self._alexnet, images.x, self.device, self.config.feature_batch_size)




# --- loading scikit-learn state safely ---

# skops refuses every type outside its trusted list; scikit-learn's tree nodes are the one extra type the
# Isolation Forest needs. skops warns that their node indices are not bounds-checked, so they are checked here.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def canonical_skops(blob: bytes) -> bytes:
    """The same skops archive with the same bytes every time: skops names its entries and memo ids
    after memory addresses and stamps the time, so an unchanged model would look changed to DVC."""
    src = zipfile.ZipFile(io.BytesIO(blob))
    schema = json.loads(src.read("schema.json"))
    names, ids = set(src.namelist()), {}
    files: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str) and value in names:
                    node[key] = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for old, new in files.items():
            dst.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), src.read(old),
                         compress_type=src.getinfo(old).compress_type)
        dst.writestr(zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
                     json.dumps(schema, indent=2), compress_type=src.getinfo("schema.json").compress_type)
    return out.getvalue()


def load_skops(blob: bytes):
    """A model dict written by `FeatureDetector.state_dict`; refuses unknown types and malformed trees."""
    untrusted = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"the model holds types ganad does not load: {untrusted}")
    model = skops.io.loads(blob, trusted=TRUSTED_TYPES)
    for estimator in getattr(model.get("detector"), "estimators_", []) or []:
        _check_tree(estimator.tree_, estimator.n_features_in_)
    return model


def _check_tree(tree, n_features: int) -> None:
    n = tree.node_count
    for name in ("children_left", "children_right"):
        child = getattr(tree, name)
        if len(child) != n or child.min() < -1 or child.max() >= n:
            raise ValueError(f"a stored tree has {name} outside 0..{n - 1}")
    if tree.feature.max() >= n_features or tree.feature.min() < -2:
        raise ValueError(f"a stored tree splits on features outside 0..{n_features - 1}")
