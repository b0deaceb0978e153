# Docs: docs/methods/egbad.md (what it computes, its settings, deviations from its paper, budgets).
"""EGBAD (Zenati, Foo, Lecouat, Manek, Chandrasekhar, ICLR-W 2018): a BiGAN (`ganad.methods.common.bigan`), scored as
EGBAD's code scores it.

Score, with the moving-average weights in eval mode (BatchNorm on running statistics,
dropout off) and z = E(x) in both discriminator calls:

    A(x) = (1 - alpha) |x - G(E(x))|_1 + alpha |f(x, E(x)) - f(G(E(x)), E(x))|_1

alpha = 0.1 on the feature term (EGBAD's `--w 0.1`, `--d 1`, `--m fm`); `score: cross_e`
replaces the feature term by BCE(D(G(E(x)), E(x)), 1), the code's other mode. The ADAE
paper writes the weights the other way round and gives no value; we follow the code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganad.methods.common.bigan import BiGANMethod
from ganad.methods.egbad import Config


class EGBAD(BiGANMethod):
    name = "egbad"
    Config = Config

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        E, G, D = self.ema["E"], self.ema["G"], self.ema["D"]
        z = E(x)
        x_rec = G(z)
        residual = (x - x_rec).abs().flatten(1).sum(1)
        if self.config.score == "fm":
            dis = (D.features(x, z) - D.features(x_rec, z)).abs().sum(1)
        else:
            logit = D(x_rec, z)
            dis = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit), reduction="none")
        return (1 - self.config.alpha) * residual + self.config.alpha * dis
