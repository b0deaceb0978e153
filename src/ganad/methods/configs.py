"""The params sections every method Config extends: network methods (`NetConfig`, `AdamConfig`) and the
features -> PCA -> detector baselines (`FeatureConfig`, `KDEConfig`, `OCSVMConfig`). Light: no torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ganad.data.protocols import PROTOCOLS
from ganad.schema import Bool, Float, Fraction, Int, PositiveFloat, PositiveInt, Section, Text

SELECT = ("last", "best_val")
ADAM_IMPLS = ("fused", "foreach", "loop")
PRECISIONS = ("fp32", "bf16")  # see ganad.methods.common.training.adam


class NetConfig(Section):
    """What every network method shares (see `ganad.methods.common.training`); a method redeclares a field to change
    its default and adds its own fields below these."""

    latent_dim: Int = Field(32, gt=0)
    width: Int = Field(64, gt=0)  # channels of the first DCGAN layer
    epochs: Int = Field(20, gt=0)
    min_steps: Int = Field(0, ge=0)  # raises epochs until training takes this many updates
    # min_steps for one protocol's training sets instead (e.g. {leave_one_class_out: 0}): a protocol with large
    # training sets reaches its updates by epochs, and a budget is best spent where it moves the curve
    min_steps_by_protocol: dict[Literal[PROTOCOLS], Annotated[int, Field(ge=0, strict=True)]] = Field(
        default_factory=dict
    )
    # the share of that budget (epochs, raised to min_steps) that trains, in updates rounded up, the last epoch cut
    # short: run.budget_scale multiplies it, to run a profile end to end before paying for it in full
    budget_scale: PositiveFloat = 1.0
    batch_size: Int = Field(64, gt=0)
    drop_last: Bool = False  # drop the last incomplete batch of every epoch
    select: Literal[SELECT] = "last"  # best_val: the epoch with the lowest normal-validation score
    score_batch_size: Int = Field(256, gt=0)
    threads: Int = Field(0, ge=0)  # 0 keeps torch's default
    # bf16: training steps under torch.autocast in bfloat16 (weights, optimiser and scores stay fp32); a GPU's or an
    # AMX/AVX512-BF16 CPU's speed-up, checked against fp32 by benchmarks/bench_precision.py
    precision: Literal[PRECISIONS] = "fp32"

    def for_protocol(self, protocol: str) -> NetConfig:
        """These settings as one protocol trains with them: `min_steps_by_protocol`'s entry as `min_steps`."""
        if protocol not in self.min_steps_by_protocol:
            return self
        return self.model_copy(update={"min_steps": self.min_steps_by_protocol[protocol]})


class AdamConfig(NetConfig):
    """A network method trained with Adam (`NeuralMethod.adam`)."""

    lr: Float = Field(2e-4, gt=0)
    beta1: Fraction = 0.5
    beta2: Fraction = 0.999
    adam: Literal[ADAM_IMPLS] = "loop"  # speed only: the same Adam maths


PAPER_PCA_SIZES = [20, 40, 60, 80, 100]


class FeatureConfig(Section):
    """What every features -> PCA -> detector method shares (see `ganad.methods.common.features`)."""

    pca_sizes: list[PositiveInt] = Field(PAPER_PCA_SIZES, min_length=1)
    pca_criterion: Literal["ppca"] = "ppca"  # density methods may also use "detector"
    max_train: PositiveInt | None = None  # deviation: seeded subsample of the training images
    seed: Int | None = Field(None, ge=0)  # None: drawn from the run's seeded global RNG
    # threads for BLAS / OpenMP inside scikit-learn and numpy (not the AlexNet forward pass). With 2
    # threads on the shared 2-core machine, OpenBLAS spun: one 200 x 1024 SVD took 2.4-5.5 s, not 0.07-0.1 s.
    blas_threads: Int = Field(1, gt=0)


class AlexNetOptions(Section):
    """Where the ImageNet AlexNet weights of the `*_alexnet` methods come from."""

    weights_dir: Text | None = None  # None: torch hub's cache, $TORCH_HOME/hub/checkpoints
    download: Bool = False  # True lets torchvision fetch the weights (needs the internet)
    feature_batch_size: Int = Field(64, gt=0)


PAPER_BANDWIDTHS = [float(2.0 ** (j / 2)) for j in range(9)]  # 2^0, 2^0.5, ..., 2^4
PAPER_COMPONENTS = list(range(2, 21))


class KDEConfig(FeatureConfig):
    """`kde` and `kde_alexnet` (`ganad.methods.common.features.KDEDetector`)."""

    pca_criterion: Literal["detector", "ppca"] = "detector"
    bandwidths: list[PositiveFloat] = Field(PAPER_BANDWIDTHS, min_length=1)
    cv_folds: Int = Field(10, ge=2)
    standardize: Bool = False  # False: raw PCA coordinates, where the paper's grid 1..16 is meaningful


class OCSVMConfig(FeatureConfig):
    """`ocsvm` and `ocsvm_alexnet` (`ganad.methods.common.features.OCSVMDetector`)."""

    nu: Float = Field(0.1, gt=0, le=1)
    gamma: Literal["evangelista", "scale"] = "evangelista"
