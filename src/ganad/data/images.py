"""Prepared images: 32x32 uint8 NCHW on disk, [-1, 1] float tensors in memory.

`prepare` pools the official train and test images (in that order) and resizes
them once. Data that is not 8-bit (z-scored MRI slices, `ganad.studies.brain`) is stored as
float16 already in [-1, 1] and read as it is. Stages open the pooled array with `np.load(mmap_mode="r")` and read
only the rows a split names, so no stage copies a whole dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganad.data.protocols import rebuild_prepared
from ganad.data.sources import RawDataset
from ganad.errors import DataError
from ganad.files import load_npy, replace_folder, save_npy, write_json

IMAGE_SIZE = 32


def to_nchw(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def resize_uint8(x: np.ndarray, size: int = IMAGE_SIZE, chunk: int = 4096) -> np.ndarray:
    """Bilinear (antialiased) resize of uint8 NCHW images, rounded back to uint8."""
    if x.shape[-2:] == (size, size):
        return np.ascontiguousarray(x)
    out = np.empty((len(x), x.shape[1], size, size), dtype=np.uint8)
    for start in range(0, len(x), chunk):
        batch = torch.from_numpy(x[start : start + chunk]).float()
        resized = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + chunk] = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def prepare(raw: RawDataset, out_dir: Path) -> dict:
    """Write images.npy (uint8 N,C,32,32), labels.npy and meta.json (sizes, channels, class names) into out_dir,
    replacing the folder whole (`ganad.files.replace_folder`): a failure leaves the previous three files."""
    images = resize_uint8(np.concatenate([to_nchw(raw.x_train), to_nchw(raw.x_test)]))
    labels = np.concatenate([raw.y_train, raw.y_test]).astype(np.int64)
    meta = {
        "dataset": raw.name,
        "n_train": len(raw.y_train),
        "n_test": len(raw.y_test),
        "channels": int(images.shape[1]),
        "size": IMAGE_SIZE,
        "classes": list(raw.classes),
    }
    with replace_folder(out_dir) as tmp:
        save_npy(tmp / "images.npy", images)
        save_npy(tmp / "labels.npy", labels)
        write_json(tmp / "meta.json", meta)
    return meta


def to_unit_range(batch: np.ndarray) -> torch.Tensor:
    """uint8 pixels 0..255 to [-1, 1]; float images are in [-1, 1] already."""
    values = torch.from_numpy(np.asarray(batch, dtype=np.float32))
    return values / 127.5 - 1.0 if batch.dtype == np.uint8 else values


@dataclass
class ImageSet:
    """A subset of prepared images: `x` in [-1, 1] (N, C, 32, 32) float32, and labels."""

    x: torch.Tensor
    labels: np.ndarray
    index: np.ndarray  # rows of the pooled array, for tracing a score back to its image

    @classmethod
    def from_dir(cls, prepared_dir: Path, index: np.ndarray, rebuild: str | None = None) -> ImageSet:
        """The rows `index` of a prepared folder; a missing or truncated file stops naming it and `rebuild`
        (by default the preprocess stage of the folder's dataset)."""
        prepared_dir = Path(prepared_dir)
        rebuild = rebuild or rebuild_prepared(prepared_dir.name)
        images = load_npy(prepared_dir / "images.npy", rebuild)
        labels = load_npy(prepared_dir / "labels.npy", rebuild)
        index = np.asarray(index, dtype=np.int64)
        if len(images) != len(labels) or (len(index) and (index.min() < 0 or index.max() >= len(images))):
            raise DataError(
                f"'{prepared_dir}' holds {len(images)} images and {len(labels)} labels, which do not fit the "
                f"split read with it (indices up to {index.max() if len(index) else '-'}); rebuild the prepared "
                f"data with `{rebuild}`, then the splits"
            )
        return cls(to_unit_range(images[index]), np.asarray(labels[index]), index)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])
