# Docs: docs/methods/ganomaly.md (what it computes, its settings, deviations from its paper, budgets).
"""GANomaly (Akcay, Atapour-Abarghouei, Breckon, ACCV 2018), as the reference code's HEAD trains it.

Networks (`nets.encoder` / `nets.decoder`, DCGAN init, no biases):

- generator: encoder E1 (x -> z, latent `latent_dim`), decoder (z -> x_hat) and a
  second encoder E2 (x_hat -> z_hat);
- discriminator D: an encoder with one output logit; its features f are the output
  of its last convolutional block (4 * width x 4 x 4), D without its final conv.

One step on a batch x (the reference's optimize_params):

- D's view of the batch before either update: D(x) and D(x_hat) with x_hat detached;
- generator: L_G = w_adv |f(x) - f(x_hat)|_2^2 + w_con |x - x_hat|_1 + w_enc |z - z_hat|_2^2,
  each a mean over its elements (weights 1 / 50 / 1), f(x) held fixed, gradient into
  the whole generator through f(x_hat);
- discriminator: L_D = (BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2 on the logits of the first
  bullet (BCE with logits: the reference's sigmoid then BCELoss, computed stably);
- if L_D < `reinit_threshold` (1e-5), D is re-initialised (`reinit_d`), as the reference.

Score: mean over the latent of (z - z_hat)^2 (the reference's; the paper writes an L1
norm, which ranks images nearly the same), BatchNorm in eval mode.

Where we differ from the reference code, on purpose:

- the epoch is the last one, or with `select: best_val` the one with the lowest mean
  score on the normal validation slice; the reference keeps the epoch of the best
  test-set AUROC;
- scoring is in eval mode; the reference never calls eval(), so its test scores used
  the statistics of each test batch (whose composition it did not shuffle for CIFAR-10);
- MNIST, like every dataset here, is in [-1, 1] (the reference normalises MNIST by its
  mean and standard deviation, outside the decoder's tanh range).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod, per_image_mse
from ganad.methods.ganomaly import Config


class Generator(torch.nn.Module):
    """x -> (x_hat, z, z_hat): encoder, decoder, encoder."""

    def __init__(self, channels: int, latent: int, width: int):
        super().__init__()
        self.encoder1 = nets.encoder(channels, latent, width)
        self.decoder = nets.decoder(channels, latent, width)
        self.encoder2 = nets.encoder(channels, latent, width)

    def forward(self, x: torch.Tensor):
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)


class GANomaly(NeuralMethod):
    name = "ganomaly"
    Config = Config

    def __init__(self, config: Config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        self.G = Generator(channels, config.latent_dim, config.width).to(device)
        self.D = nets.encoder(channels, 1, config.width).to(device)
        nets.dcgan_init(self.G)
        nets.dcgan_init(self.D)
        self.nets = {"G": self.G, "D": self.D}
        self.opt_g, self.opt_d = self.adam(self.G), self.adam(self.D)
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.d_reinits = 0

    def _features_and_logit(self, x: torch.Tensor):
        features = self.D[:-1](x)
        return features, self.D[-1](features).view(-1)

    def generator_loss(self, x, x_hat, z, z_hat, f_real, f_fake) -> tuple[torch.Tensor, dict]:
        """w_adv * feature matching + w_con * L1 reconstruction + w_enc * latent L2 (element means)."""
        cfg = self.config
        adv = F.mse_loss(f_fake, f_real)
        con = F.l1_loss(x_hat, x)
        enc = F.mse_loss(z_hat, z)
        loss = cfg.w_adv * adv + cfg.w_con * con + cfg.w_enc * enc
        return loss, {"loss_adv": adv.item(), "loss_con": con.item(), "loss_enc": enc.item()}

    @staticmethod
    def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> torch.Tensor:
        """(BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2."""
        return 0.5 * (
            F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
            + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
        )

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        cfg = self.config
        # forward: the generator's three outputs, and D on the batch before either update
        x_hat, z, z_hat = self.G(x)
        f_real, logit_real = self._features_and_logit(x)
        _, logit_fake = self._features_and_logit(x_hat.detach())
        # generator: adversarial feature matching + contextual + encoder losses
        f_fake, _ = self._features_and_logit(x_hat)
        loss_g, parts = self.generator_loss(x, x_hat, z, z_hat, f_real.detach(), f_fake)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        # discriminator: BCE on real and reconstructed images (zero_grad drops what L_G left in D)
        loss_d = self.discriminator_loss(logit_real, logit_fake)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # the reference restarts a D that has won outright
        reinit = cfg.reinit_d and loss_d.item() < cfg.reinit_threshold
        if reinit:
            nets.dcgan_init(self.D)
            self.d_reinits += 1
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), **parts, "d_reinit": float(reinit)}

    def score_batch(self, x: torch.Tensor) -> torch.Tensor:
        """mean over the latent of (E1(x) - E2(G(E1(x))))^2."""
        _, z, z_hat = self.G(x)
        return per_image_mse(z, z_hat)

    def selected(self) -> dict:
        return {**super().selected(), "d_reinits": self.d_reinits}

    def _restore_selected(self, selected: dict) -> None:
        super()._restore_selected({k: v for k, v in selected.items() if k != "d_reinits"})
        self.d_reinits = int(selected.get("d_reinits", 0))

    def extra_state(self) -> dict:
        return {"d_reinits": self.d_reinits}

    def load_extra_state(self, state: dict) -> None:
        self.d_reinits = int(state["d_reinits"])
