"""The BiGAN that EGBAD and IGMM-GAN share: encoder E, generator G, joint discriminator D(x, z).

Networks at 32x32 (EGBAD's own code is 28x28 MNIST only; these follow the same
authors' 32x32 ALAD code in shape, and are an adaptation, declared as one in the README):

- E: the DCGAN encoder (`nets.encoder`), x -> z (latent x 1 x 1);
- G: the DCGAN decoder (`nets.decoder`), z -> x;
- D(x, z): an x branch (the DCGAN encoder without its last convolution, 4 * width x
  4 x 4, flattened), a z branch (linear to `z_hidden`, LeakyReLU, dropout), then joint
  linear to `hidden` units, LeakyReLU, dropout (the feature layer f(x, z) of the
  feature-matching scores) and a linear logit.

Training step (EGBAD's run_mnist.py; BCE on logits):

- D: BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0), z ~ N(0, I), E(x) and G(z) detached;
- E and G jointly: BCE(D(G(z), z), 1) + BCE(D(x, E(x)), 0) (non-saturating), plus
  `reconstruction_weight` x mean (x - G(E(x)))^2 (0 for EGBAD; IGMM-GAN's network code
  adds this term at weight 1);
- three Adam optimisers, one per network; with `lr_halve_every` = n > 0 (IGMM-GAN's
  code: 10,000) all three learning rates halve after every n updates;
- an exponential moving average of the weights (decay `ema_decay`, 0.999 in EGBAD's
  code; 0 turns it off) is what scores, as in EGBAD. Like TensorFlow's
  ExponentialMovingAverage on trainable variables, it averages the weights from their
  initial values with a constant decay and takes BatchNorm's running statistics from
  the trained network as they are (torch's AveragedModel would average those too).

Deviation: EGBAD's joint E/G step draws its own, separately shuffled batch; here both
steps use the step's batch (the shared training loop gives one batch per step).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ganad.methods.common import nets
from ganad.methods.common.training import NeuralMethod


class JointDiscriminator(nn.Module):
    def __init__(
        self, channels: int, latent: int, width: int, hidden: int = 1024, z_hidden: int = 512, dropout: float = 0.5
    ):
        super().__init__()
        self.x_branch = nn.Sequential(*list(nets.encoder(channels, 1, width))[:-1], nn.Flatten())
        self.z_branch = nn.Sequential(nn.Flatten(), nn.Linear(latent, z_hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.joint = nn.Sequential(nn.Linear(4 * width * 16 + z_hidden, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.logit = nn.Linear(hidden, 1)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f(x, z): the last hidden layer."""
        return self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], dim=1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x, z)).view(-1)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class BiGANMethod(NeuralMethod):
    """E, G, D, their optimisers and EMA copies; a method adds its score (and `reconstruction_weight`)."""

    reconstruction_weight = 0.0

    def __init__(self, config, channels: int, device: torch.device):
        super().__init__(config, channels, device)
        cfg = config
        self.E = nets.encoder(channels, cfg.latent_dim, cfg.width).to(device)
        self.G = nets.decoder(channels, cfg.latent_dim, cfg.width).to(device)
        self.D = JointDiscriminator(channels, cfg.latent_dim, cfg.width, cfg.d_hidden, cfg.z_hidden, cfg.dropout).to(
            device
        )
        for net in (self.E, self.G, self.D):
            nets.dcgan_init(net)
        self.nets = {"E": self.E, "G": self.G, "D": self.D}
        self.optimizers = {name: self.adam(net) for name, net in self.nets.items()}
        if cfg.ema_decay > 0:
            self.ema = {
                name: copy.deepcopy(net).requires_grad_(False)
                for name, net in (("E", self.E), ("G", self.G), ("D", self.D))
            }
            self.nets.update({f"{name}_ema": net for name, net in self.ema.items()})
        else:
            self.ema = {"E": self.E, "G": self.G, "D": self.D}
        self.updates = 0  # E/G updates so far: the learning-rate halving counts them

    @property
    def lr_halve_every(self) -> int:
        return getattr(self.config, "lr_halve_every", 0)

    def current_lr(self) -> float:
        n = self.lr_halve_every
        return self.config.lr * 0.5 ** (self.updates // n) if n else self.config.lr

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, 1, 1, device=self.device)

    def train_step(self, x: torch.Tensor, epoch: int = 0, step: int = 0) -> dict[str, float]:
        opt = self.optimizers
        lr = self.current_lr()
        for optimizer in opt.values():
            for group in optimizer.param_groups:
                group["lr"] = lr
        z = self._noise(len(x))
        # discriminator: (x, E(x)) real, (G(z), z) generated
        ex, gz = self.E(x), self.G(z)
        logit_enc, logit_gen = self.D(x, ex.detach()), self.D(gz.detach(), z)
        loss_d = bce(logit_enc, 1.0) + bce(logit_gen, 0.0)
        opt["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        opt["D"].step()
        # encoder and generator together: fool the updated D from both sides (non-saturating)
        loss_g, loss_e = bce(self.D(gz, z), 1.0), bce(self.D(x, ex), 0.0)
        loss_ge = loss_g + loss_e
        out = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "loss_e": loss_e.item()}
        if self.reconstruction_weight:
            rec = F.mse_loss(self.G(ex), x)
            loss_ge = loss_ge + self.reconstruction_weight * rec
            out["loss_rec"] = rec.item()
        opt["E"].zero_grad(set_to_none=True)
        opt["G"].zero_grad(set_to_none=True)
        loss_ge.backward()
        opt["E"].step()
        opt["G"].step()
        self._update_ema()
        self.updates += 1
        return out

    def extra_state(self) -> dict:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict) -> None:
        self.updates = int(state["updates"])

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema_decay
        if decay <= 0:
            return
        for name in ("E", "G", "D"):
            trained, average = self.nets[name], self.ema[name]
            for p, q in zip(trained.parameters(), average.parameters()):
                q.mul_(decay).add_(p, alpha=1 - decay)
            for b, c in zip(trained.buffers(), average.buffers()):
                c.copy_(b)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) with the scoring weights (eval mode is the caller's: `map_batches`)."""
        return self.ema["E"](x)
