"""Shared fixtures: small synthetic datasets, never the real ones."""

import numpy as np
import pytest
import torch

from ganad.images import ImageSet
from ganad.sources import RawDataset

torch.set_num_threads(1)  # tiny tensors: more threads only add synchronisation


def blob_images(n: int, rng: np.random.Generator, anomalous: bool = False) -> np.ndarray:
    """28x28 uint8 digits-like images: normal ones are a bright disc, anomalous ones a bright bar."""
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(11, 17, size=2)
        if anomalous:
            mask = (np.abs(xx - cx) < 2) & (np.abs(yy - cy) < 11)
        else:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(25, 40)
        out[i][mask] = 255
    return out


@pytest.fixture
def tiny_mnist() -> RawDataset:
    """600 train / 200 test MNIST-shaped images: class 0 discs, classes 1-9 bars, labels balanced."""
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 10
        x = np.where((y == 0)[:, None, None], blob_images(n, rng), blob_images(n, rng, anomalous=True))
        return x.astype(np.uint8), y.astype(np.int64)

    return RawDataset("mnist", *part(600), *part(200)).validate()


def easy_sets(n_train=256, n_test=128, seed=0):
    """Train on discs only; test on half discs (normal, 0) and half bars (anomalous, 1), in [-1, 1]."""
    rng = np.random.default_rng(seed)

    def to_set(x, labels):
        x32 = np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None]
        return ImageSet(torch.from_numpy(x32.astype(np.float32) / 127.5 - 1), labels, np.arange(len(x)))

    train = to_set(blob_images(n_train, rng), np.zeros(n_train, dtype=np.int64))
    val = to_set(blob_images(n_train // 4, rng), np.zeros(n_train // 4, dtype=np.int64))
    half = n_test // 2
    test_x = np.concatenate([blob_images(half, rng), blob_images(half, rng, anomalous=True)])
    test = to_set(test_x, np.repeat([0, 1], half))
    return train, val, test


@pytest.fixture
def easy():
    return easy_sets()
