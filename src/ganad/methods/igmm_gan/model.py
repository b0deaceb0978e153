# Docs: docs/methods/igmm_gan.md (what it computes, its settings, deviations from its paper, budgets).
"""IGMM-GAN (Gray, Smolyak, Badirli, Mohler 2018): a BiGAN with a reconstruction term, and an infinite
Gaussian mixture on the encodings of the normal training images.

Network: the BiGAN of `ganad.methods.common.bigan` with `w_rec` x mean (x - G(E(x)))^2 added to the
encoder/generator loss, as the authors' public network code (mnist_gex.py) does.

Mixture (ours: the public code contains no mixture step, so its settings are parameters
chosen on training data only): after training, E(x) of the training normals (a seeded
subsample of `max_train`) is fitted with scikit-learn's BayesianGaussianMixture, a
Dirichlet-process prior truncated at `components`, for each covariance type in
`covariance_types`; the one whose mixture density gives the normal validation images'
encodings the highest mean log-likelihood is kept. Components with a weight of at least
`active_weight` are the clusters.

Score (`score: mahalanobis`, the ADAE paper's description): the Mahalanobis distance of
E(x) to the nearest cluster; `score: nll`: the negative log-likelihood of E(x) under the
whole mixture. The mixture is stored as arrays (weights, means, Cholesky factors of the
precisions), and both scores are computed from them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.mixture import BayesianGaussianMixture

from ganad.data.images import ImageSet
from ganad.methods.common.bigan import BiGANMethod
from ganad.methods.common.training import per_image_mse
from ganad.methods.igmm_gan import Config


def full_precision_cholesky(mixture: BayesianGaussianMixture) -> np.ndarray:
    """(K, d, d) Cholesky factors L of the precisions (precision = L L^T) for `full` or `diag` mixtures."""
    pc = mixture.precisions_cholesky_
    return pc if mixture.covariance_type == "full" else np.stack([np.diag(row) for row in pc])


def mahalanobis(z: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """(N, K) Mahalanobis distances of z to each component."""
    return np.stack([np.linalg.norm((z - m) @ L, axis=1) for m, L in zip(means, prec_chol)], axis=1)


def log_likelihood(z: np.ndarray, weights: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """log sum_k w_k N(z; mu_k, (L_k L_k^T)^-1) per row: the density of the fitted mixture (not scikit-learn's
    BayesianGaussianMixture.score_samples, which is the variational expectation of the log-likelihood)."""
    d = z.shape[1]
    log_det = np.log(np.stack([np.diag(L) for L in prec_chol])).sum(1)
    log_norm = -0.5 * d * math.log(2 * math.pi) + log_det - 0.5 * mahalanobis(z, means, prec_chol) ** 2
    joint = np.log(weights) + log_norm
    top = joint.max(1, keepdims=True)
    return (top + np.log(np.exp(joint - top).sum(1, keepdims=True)))[:, 0]


MIXTURE_ARRAYS = ("weights", "means", "prec_chol")  # stored as tensors; the rest of the mixture is plain data


class IGMMGAN(BiGANMethod):
    name = "igmm_gan"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.reconstruction_weight = config.w_rec
        self.mixture: dict | None = None  # weights, means, prec_chol (arrays), and what was chosen

    def encodings(self, images: ImageSet) -> np.ndarray:
        out = self.map_batches(images.x, lambda xb: self.encode(xb).flatten(1).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.latent_dim))

    def epoch_metrics(self, epoch: int, last: bool, train: ImageSet, val: ImageSet) -> dict[str, float]:
        """`val_score` during training (the mixture comes after): the validation normals' mean
        reconstruction error |x - G(E(x))|^2, which is what `select: best_val` would choose by."""
        if not len(val):
            return {"val_score": float("nan")}
        G = self.ema["G"]
        out = self.map_batches(val.x, lambda xb: per_image_mse(G(self.encode(xb)), xb).double().cpu())
        return {"val_score": float(torch.cat(out).mean())}

    def learn(self, train: ImageSet, val: ImageSet, run) -> None:
        super().learn(train, val, run)
        self.fit_mixture(self.encodings(train), self.encodings(val))

    def fit_mixture(self, z: np.ndarray, z_val: np.ndarray) -> None:
        """The Dirichlet-process mixture on training encodings; covariance type by validation likelihood."""
        cfg = self.config
        rng = np.random.default_rng(cfg.mixture_seed)
        if cfg.max_train is not None and len(z) > cfg.max_train:
            z = z[np.sort(rng.choice(len(z), cfg.max_train, replace=False))]
        check = z_val if len(z_val) else z  # what the covariance type is chosen on
        best = None
        for cov in cfg.covariance_types:
            bgm = BayesianGaussianMixture(
                n_components=cfg.components,
                covariance_type=cov,
                weight_concentration_prior_type="dirichlet_process",
                weight_concentration_prior=cfg.concentration,
                reg_covar=cfg.reg_covar,
                max_iter=cfg.max_iter,
                random_state=cfg.mixture_seed,
            ).fit(z)
            held_out = float(log_likelihood(check, bgm.weights_, bgm.means_, full_precision_cholesky(bgm)).mean())
            if best is None or held_out > best[0]:
                best = (held_out, cov, bgm)
        held_out, cov, bgm = best
        self.mixture = {
            "weights": bgm.weights_.copy(),
            "means": bgm.means_.copy(),
            "prec_chol": full_precision_cholesky(bgm).copy(),
            "covariance_type": cov,
            "val_loglik": held_out,
            "converged": bool(bgm.converged_),
        }

    def _active(self) -> np.ndarray:
        return np.flatnonzero(self.mixture["weights"] >= self.config.active_weight)

    def score(self, images: ImageSet) -> np.ndarray:
        if self.mixture is None:
            raise RuntimeError("igmm_gan: score() before fit() or load()")
        z = self.encodings(images)
        m = self.mixture
        if self.config.score == "nll":
            return -log_likelihood(z, m["weights"], m["means"], m["prec_chol"])
        active = self._active()
        return mahalanobis(z, m["means"][active], m["prec_chol"][active]).min(1).astype(np.float64)

    def selected(self) -> dict:
        out = super().selected()
        if self.mixture is not None:
            m = self.mixture
            out.update(
                covariance_type=m["covariance_type"],
                clusters=int(len(self._active())),
                val_loglik=round(m["val_loglik"], 4),
                converged=m["converged"],
            )
        return out

    def _restore_selected(self, selected: dict) -> None:
        super()._restore_selected({k: v for k, v in selected.items() if k in ("best_epoch", "best_val_score")})

    def model_state(self) -> dict:
        state = super().model_state()
        if self.mixture is not None:
            state["mixture"] = {k: torch.from_numpy(v) if k in MIXTURE_ARRAYS else v for k, v in self.mixture.items()}
        return state

    def load_model_state(self, state: dict) -> None:
        super().load_model_state(state)
        m = state.get("mixture")
        self.mixture = None if m is None else {k: v.numpy() if k in MIXTURE_ARRAYS else v for k, v in m.items()}
