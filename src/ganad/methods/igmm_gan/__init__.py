"""IGMM-GAN (Gray, Smolyak, Badirli, Mohler 2018): a BiGAN with a reconstruction term and an infinite
Gaussian mixture on its encodings; the maths is in `model.py` and the BiGAN in `ganad.methods.common.bigan`."""

from typing import Literal

from pydantic import Field

from ganad.methods.configs import AdamConfig
from ganad.schema import Bool, Float, Fraction, Int, PositiveFloat, PositiveInt

COVARIANCES = ("full", "diag")


class Config(AdamConfig):
    # the authors' network code (mnist_gex.py): latent 100, batch 128, Adam 1e-5 beta1 0.5, BCE + BCE + MSE
    latent_dim: Int = Field(100, gt=0)
    width: Int = Field(64, gt=0)
    epochs: Int = Field(90, gt=0)  # 40,000 iterations of batch 128 on 56,000 images
    batch_size: Int = Field(128, gt=0)
    lr: Float = Field(1e-5, gt=0)
    lr_halve_every: Int = Field(10000, ge=0)  # updates; the authors' code halves lr every 10,000 (0: never)
    drop_last: Bool = True
    d_hidden: Int = Field(1024, gt=0)
    z_hidden: Int = Field(512, gt=0)
    dropout: Fraction = 0.5
    ema_decay: Fraction = 0.0  # the authors' code scores the trained weights
    w_rec: Float = Field(1.0, ge=0)  # weight of mean (x - G(E(x)))^2 in the E/G loss (Keras: equal weights)
    # the mixture (ours: the public code has none): scikit-learn's BayesianGaussianMixture with a
    # Dirichlet-process prior on E(x) of the training normals, covariance type chosen by the
    # log-likelihood of the validation normals' encodings
    components: Int = Field(20, gt=0)  # truncation level
    concentration: PositiveFloat | None = Field(None, description="null (1 / components) or a number > 0")
    covariance_types: list[Literal[COVARIANCES]] = Field(["full", "diag"], min_length=1)
    reg_covar: Float = Field(1e-4, gt=0)
    max_iter: Int = Field(500, gt=0)
    max_train: PositiveInt | None = 20000  # encodings the mixture is fitted on (seeded subsample)
    mixture_seed: Int = Field(0, ge=0)
    active_weight: Float = Field(0.01, gt=0)  # components with a weight below this are not clusters
    score: Literal["mahalanobis", "nll"] = "mahalanobis"
