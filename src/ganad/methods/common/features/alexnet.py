"""ImageNet AlexNet features for the `*_alexnet` baselines: the weights (torch hub cache, or a download that
can fail offline), and the output of the final convolutional block."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganad.data.images import ImageSet
from ganad.methods.base import MethodUnavailable
from ganad.methods.common.training import batches


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
        how = (
            f"put {ALEXNET_WEIGHTS_URL} at '{path}' (or set weights_dir to its folder), "
            "or set download: true on a machine that reaches download.pytorch.org"
        )
        if not download:
            raise WeightsUnavailable(f"ImageNet AlexNet weights not found at '{path}' and download is off; {how}")
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(ALEXNET_WEIGHTS_URL, str(path), progress=False)
        except Exception as err:  # no network, proxy, timeout, partial file: all end the same way
            raise WeightsUnavailable(
                f"ImageNet AlexNet weights could not be downloaded ({type(err).__name__}: {err}); {how}"
            ) from err
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
