"""Device choice and seeding shared by every method."""

import random

import numpy as np
import torch

from ganad.errors import ParamsError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(f"device: '{name}' was asked for but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch so that CPU runs repeat bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
