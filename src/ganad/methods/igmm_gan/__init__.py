"""IGMM-GAN (Gray, Smolyak, Badirli, Mohler 2018): a BiGAN with a reconstruction term and an infinite
Gaussian mixture on its encodings; the maths is in `model.py` and the BiGAN in `ganad.bigan`."""

from dataclasses import dataclass

from ...checks import (AdamConfig, flag, fraction, is_number, non_negative, non_negative_int, one_of,
                       optional_positive_int, positive, positive_int, rule)

COVARIANCES = ("full", "diag")


@dataclass
class Config(AdamConfig):
    # the authors' network code (mnist_gex.py): latent 100, batch 128, Adam 1e-5 beta1 0.5, BCE + BCE + MSE
    latent_dim: int = positive_int(100)
    width: int = positive_int(64)
    epochs: int = positive_int(90)  # 40,000 iterations of batch 128 on 56,000 images
    batch_size: int = positive_int(128)
    lr: float = positive(1e-5)
    lr_halve_every: int = non_negative_int(10000)  # updates; the authors' code halves lr every 10,000 (0: never)
    drop_last: bool = flag(True)
    d_hidden: int = positive_int(1024)
    z_hidden: int = positive_int(512)
    dropout: float = fraction(0.5)
    ema_decay: float = fraction(0.0)  # the authors' code scores the trained weights
    w_rec: float = non_negative(1.0)  # weight of mean (x - G(E(x)))^2 in the E/G loss (Keras: equal weights)
    # the mixture (ours: the public code has none): scikit-learn's BayesianGaussianMixture with a
    # Dirichlet-process prior on E(x) of the training normals, covariance type chosen by the
    # log-likelihood of the validation normals' encodings
    components: int = positive_int(20)  # truncation level
    concentration: float | None = rule(None, lambda v: v is None or (is_number(v) and v > 0),
                                       "null (1 / components) or a number > 0")
    covariance_types: list = rule(["full", "diag"], lambda v: isinstance(v, (list, tuple)) and len(v) > 0
                                  and all(c in COVARIANCES for c in v), f"a non-empty list from {list(COVARIANCES)}",
                                  factory=True)
    reg_covar: float = positive(1e-4)
    max_iter: int = positive_int(500)
    max_train: int | None = optional_positive_int(20000)  # encodings the mixture is fitted on (seeded subsample)
    mixture_seed: int = non_negative_int(0)
    active_weight: float = positive(0.01)  # components with a weight below this are not clusters
    score: str = one_of("mahalanobis", ("mahalanobis", "nll"))
