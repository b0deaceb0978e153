"""Image folders read with Pillow: classed (`root/<class>/...`, ImageFolder's convention) or flat.

Every image is decoded as what it is (`_eight_bit`: 16-bit pixels scaled by 65535 -> 255, float pixels
in [0, 1] by 255, a multi-frame TIFF's first frame), centre-cropped to a square and resized to `size` x
`size` (32, the networks' input), grey ("L") or colour ("RGB"). A file that cannot be decoded, or whose
pixels cannot be mapped to 8 bits without saturating (floats outside [0, 1], 32-bit integers beyond
255), or a GIF, is skipped; `read_images` returns the skipped paths with their reasons, and
`warn_skipped` reports them in one warning. Decoding runs no code from the file, and an image whose
header declares more pixels than Pillow's decompression-bomb limit is refused before it is decoded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganad.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".gif")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
CHANNEL_CHOICES = ("auto", 1, 3)


@dataclass
class FolderImages:
    """Decoded images of one folder: uint8 (N, size, size) or (N, size, size, 3), with their paths."""

    x: np.ndarray
    paths: list[str]  # as given, relative to nothing: what scores.csv names
    labels: np.ndarray | None  # index into `classes`, or None for a flat folder
    classes: list[str] | None


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files ignored)."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


class NotDecoded(ValueError):
    """An image file whose pixels cannot be mapped to 8 bits as they are; the message says why."""


def _eight_bit(img):
    """`img` as an 8-bit Pillow image, scaled by what its pixels are: 16-bit by 65535 -> 255, float in [0, 1]
    by 255; 8-bit modes (L, RGB, P, LA, RGBA, 1, CMYK...) as they are. What cannot be mapped without
    saturating raises NotDecoded with the reason."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16") or (mode == "I" and img.format == "PNG"):  # 16 bits a sample
        values = np.asarray(img).astype(np.float64)
        return Image.fromarray(np.round(values / 257.0).astype(np.uint8), "L")
    if mode == "I":  # 32-bit integers (TIFF): 8-bit values pass as they are, others have no known bit depth
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise NotDecoded(
                f"32-bit integer pixels span {values.min()}..{values.max()}, of no known bit depth; "
                "save it as an 8- or 16-bit image"
            )
        return Image.fromarray(values.astype(np.uint8), "L")
    if mode == "F":  # float: [0, 1] scaled to 0..255
        values = np.asarray(img).astype(np.float64)
        if not np.all(np.isfinite(values)) or (values.size and (values.min() < 0 or values.max() > 1)):
            finite = values[np.isfinite(values)]
            span = f"{finite.min():g}..{finite.max():g}" if finite.size else "no finite value"
            raise NotDecoded(
                f"float pixels ({span}{', with NaN or inf' if finite.size < values.size else ''}) "
                "are not in [0, 1]; scale them to [0, 1] or save it as an 8-bit image"
            )
        return Image.fromarray(np.round(values * 255.0).astype(np.uint8), "L")
    return img


def _decode(path: Path, size: int, grey: bool | None):
    """(array, is_grey) of one image, or raise any Pillow/OS error or NotDecoded. The size its header declares
    is checked against Pillow's decompression-bomb limit before any pixel is decoded; a multi-frame image
    (a TIFF stack) gives its first frame; a GIF is not read; an EXIF orientation tag (a phone or camera held
    sideways) is applied, so the image is upright as a viewer shows it."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused, not only warned about
        img = Image.open(path)
    with img:
        w, h = img.size
        if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:
            raise NotDecoded(
                f"its header declares {w}x{h} pixels, over the limit of {Image.MAX_IMAGE_PIXELS} "
                "(a decompression bomb?); not decoded"
            )
        if img.format == "GIF":
            raise NotDecoded("GIF images (palette, often animated) are not read; convert it to PNG")
        img.load()
        img = ImageOps.exif_transpose(img)  # a no-op without an orientation tag
        w, h = img.size
        is_grey = img.mode in GREY_MODES
        img = _eight_bit(img)
        img = img.convert("L" if (is_grey if grey is None else grey) else "RGB")
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8), is_grey


def read_images(paths: list[Path], channels="auto", size: int = 32) -> tuple[np.ndarray, list[int], list[tuple]]:
    """Decode `paths`: (images, indices of the decoded paths, [(path, reason) skipped]).

    `channels` 1 or 3 converts every image; `auto` is 1 when every decodable image is
    grey, else 3 (grey images then repeat their channel).
    """
    if channels not in CHANNEL_CHOICES:
        raise DataError(f"channels = {channels!r} is invalid: allowed {list(CHANNEL_CHOICES)}")
    grey = None if channels == "auto" else channels == 1
    decoded, kept, skipped, all_grey = [], [], [], True
    for i, path in enumerate(paths):
        try:
            array, is_grey = _decode(path, size, grey)
        except NotDecoded as exc:
            skipped.append((str(path), str(exc)))
            continue
        except Exception as exc:  # Pillow raises many types (UnidentifiedImageError, OSError, SyntaxError...)
            skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
            continue
        all_grey &= is_grey
        decoded.append(array)
        kept.append(i)
    if grey is None and not all_grey:  # a colour set: convert the grey ones to three equal channels
        decoded = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in decoded]
    shape = (size, size) if (grey or (grey is None and all_grey)) else (size, size, 3)
    x = np.stack(decoded) if decoded else np.zeros((0, *shape), dtype=np.uint8)
    return x, kept, skipped


def warn_skipped(skipped: list[tuple], where: Path) -> None:
    if skipped:
        listing = "\n".join(f"  {path} ({reason})" for path, reason in skipped)
        warnings.warn(
            f"{where}: skipped {len(skipped)} file(s) that could not be decoded as 8-bit images:\n{listing}",
            stacklevel=2,
        )


def _require_folder(folder: Path, what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} '{folder}' does not exist or is not a folder; create it or correct the path")
    return folder


def read_classed(folder: Path, channels="auto", size: int = 32, classes: list[str] | None = None) -> FolderImages:
    """`folder/<class>/<image>`: labels index the sorted class names (or the given `classes`)."""
    folder = _require_folder(folder, "image folder")
    subfolders = class_folders(folder)
    if not subfolders:
        raise DataError(f"'{folder}' holds no class subfolders; put each class's images in <folder>/<class>/")
    names = [p.name for p in subfolders]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataError(
                f"'{folder}' has classes {unknown} that the training folder lacks ({classes}); "
                "give both the same class subfolders"
            )
    classes = classes if classes is not None else names
    paths, labels = [], []
    for sub in subfolders:
        files = image_files(sub)
        if not files:
            raise DataError(
                f"class folder '{sub}' holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder"
            )
        paths += files
        labels += [classes.index(sub.name)] * len(files)
    x, kept, skipped = read_images(paths, channels, size)
    warn_skipped(skipped, folder)
    labels = np.asarray(labels, dtype=np.int64)[kept]
    for k, name in enumerate(classes):
        if name in names and not np.any(labels == k):
            raise DataError(f"class folder '{folder / name}' holds no decodable image; fix or remove it")
    return FolderImages(x, [str(paths[i]) for i in kept], labels, list(classes))


def read_collection(folder: Path, channels="auto", size: int = 32) -> FolderImages:
    """A folder to rank: flat (images directly inside, no labels) or classed (subfolders are labels)."""
    folder = _require_folder(folder, "image folder")
    files, subfolders = image_files(folder), class_folders(folder)
    if files and subfolders:
        raise DataError(
            f"'{folder}' mixes images and subfolders; keep the images either all directly inside "
            "it (an unlabelled collection) or all in subfolders named by their label"
        )
    if subfolders:
        return read_classed(folder, channels, size)
    if not files:
        raise DataError(f"'{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}); point to a folder of images")
    x, kept, skipped = read_images(files, channels, size)
    warn_skipped(skipped, folder)
    if not kept:
        raise DataError(f"'{folder}': none of its {len(files)} image files could be decoded")
    return FolderImages(x, [str(files[i]) for i in kept], None, None)
