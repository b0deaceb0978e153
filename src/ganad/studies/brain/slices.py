"""Volumes to labelled 32x32 axial slices, streamed one volume at a time into the prepared dataset.

Per volume (ADAE Section 4.1, with every choice a param of `BrainParams`):
RAS orientation; z-score over the brain voxels (> 0 in the skull-stripped volume; the
background stays 0); clipped to +-clip and divided by it, so values lie in [-1, 1];
axial slices turned by np.rot90 so that both datasets show anterior up and the
subject's right on the right; slices with too little brain, or within `slice_offset`
of the bottom and top, dropped; each zero-padded to a centred square and resized to
32x32 (bilinear, antialiased). A slice's label comes from the full-resolution
segmentation before resizing: `any` voxel > 0 is tumour (ADAE 4.2), or `dkfz`: more
than `dkfz_threshold` voxels tumour, none normal, the slices between dropped.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ganad.data.protocols import save_splits
from ganad.errors import DataError
from ganad.files import swap_in
from ganad.studies.brain import CLASSES, DATASET, BrainParams
from ganad.studies.brain.volumes import (
    GRADES,
    brats_cases,
    check_case,
    geometry,
    hcp_subjects,
    is_demo,
    load_segmentation,
    load_volume,
    require_files,
)

IMAGE_SIZE = 32
RESIZE_CHUNK = 32  # slices resized at once: their padded copies take a few MB
FILTERS = ("slice_offset", "min_brain_px", "dkfz_threshold")  # why a slice is dropped, in the order applied
RECIPE = {  # what the code does whatever the params; recorded beside them
    "orientation": "RAS (nibabel io_orientation); axial slices = axis 2; np.rot90 in-plane: anterior up, "
    "subject's right on the right",
    "zscore": "per volume over brain voxels (> 0), background 0",
    "scale": "clipped to +-clip, divided by clip: [-1, 1]",
    "resize": "zero-padded to a centred square, bilinear antialiased (torch) to 32x32",
    "label": "from the full-resolution segmentation before resizing (seg > 0)",
}
CSV_COLUMNS = ("index", "source", "subject", "grade", "z", "brain_px", "tumour_px", "label")


# --- one volume ---


def zscore_brain(volume: np.ndarray) -> np.ndarray:
    """(v - mean) / std over the brain voxels (> 0) alone; every other voxel 0."""
    brain = volume > 0
    if not brain.any():
        return np.zeros(volume.shape, dtype=np.float32)
    values = volume[brain]
    out = np.subtract(volume, np.float32(values.mean(dtype=np.float64)), dtype=np.float32)
    out /= np.float32(values.std(dtype=np.float64) + 1e-8)
    np.copyto(out, 0, where=~brain)  # whole-array arithmetic: twice as fast as writing through the mask
    return out


def normalise(volume: np.ndarray, clip: float) -> np.ndarray:
    """Brain z-scores clipped to +-clip and divided by it: [-1, 1], background 0."""
    z = zscore_brain(volume)
    np.clip(z, -clip, clip, out=z)
    z /= clip
    return z


def axial(volume: np.ndarray, z) -> np.ndarray:
    """Axial slice(s) z of a RAS volume as images (rows, columns): anterior up, the subject's right on the right."""
    return np.moveaxis(np.rot90(volume[:, :, z], axes=(0, 1)), 2, 0) if np.ndim(z) else np.rot90(volume[:, :, z])


def pad_square(images: np.ndarray) -> np.ndarray:
    """Zero-pad (N, H, W) images to centred squares of side max(H, W)."""
    h, w = images.shape[-2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return np.pad(images, ((0, 0), (top, side - h - top), (left, side - w - left)))


def resize(images: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(N, H, W) float images in [-1, 1], each zero-padded to a square, to (N, size, size) float32:
    bilinear with antialiasing."""
    square = torch.from_numpy(pad_square(np.asarray(images, dtype=np.float32)))
    resized = F.interpolate(square[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[:, 0].clamp(-1, 1).numpy()


@dataclass
class VolumeSlices:
    images: np.ndarray  # (n, 32, 32) float32 in [-1, 1]
    labels: np.ndarray  # (n,) int64: 0 normal, 1 tumour
    z: np.ndarray  # axial index of each slice in the RAS volume
    brain_px: np.ndarray  # brain voxels of each slice at full resolution
    tumour_px: np.ndarray  # segmented voxels (> 0) of each slice at full resolution
    dropped: dict = field(default_factory=dict)  # filter -> slices it dropped (FILTERS)


def volume_slices(volume: np.ndarray, seg: np.ndarray | None, brain: BrainParams) -> VolumeSlices:
    """The kept axial slices of one RAS volume (seg None: a healthy volume), normalised, labelled and resized."""
    depth = volume.shape[2]
    z = np.arange(depth)
    brain_px = (volume > 0).sum(axis=(0, 1))
    tumour_px = (seg > 0).sum(axis=(0, 1)) if seg is not None else np.zeros(depth, dtype=np.int64)
    in_range = (z >= brain.slice_offset) & (z < depth - brain.slice_offset)
    enough_brain = brain_px >= brain.min_brain_px
    clear = np.ones(depth, dtype=bool)  # of ambiguous tumour: only the dkfz rule drops slices for it
    if brain.label_rule == "dkfz":
        clear = (tumour_px == 0) | (tumour_px > brain.dkfz_threshold)
    keep = in_range & enough_brain & clear
    dropped = dict(
        zip(
            FILTERS,
            (
                int((~in_range).sum()),
                int((in_range & ~enough_brain).sum()),
                int((in_range & enough_brain & ~clear).sum()),
            ),
        )
    )
    kept = z[keep]
    normalised = normalise(volume, brain.clip)
    images = np.empty((len(kept), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for start in range(0, len(kept), RESIZE_CHUNK):  # a few slices at a time: no second copy of the volume
        images[start : start + RESIZE_CHUNK] = resize(axial(normalised, kept[start : start + RESIZE_CHUNK]))
    return VolumeSlices(
        images,
        (tumour_px[keep] > 0).astype(np.int64),
        kept,
        brain_px[keep].astype(np.int64),
        tumour_px[keep].astype(np.int64),
        dropped,
    )


# --- the split ---


def subject_split(subjects, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) healthy subjects: round(val_fraction * n) of them, at least one when there are two or more
    (none when val_fraction is 0), and at least one left to train; seeded, independent of listing order."""
    names = sorted(set(subjects))
    n_val = int(round(val_fraction * len(names)))
    if val_fraction > 0 and len(names) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(len(names) - 1, 0))  # at least one subject left to train
    rng = np.random.default_rng([seed, 0])  # one stream: the protocol has one split, class 0 (normal)
    chosen = set(rng.permutation(len(names))[:n_val].tolist())
    return ([n for i, n in enumerate(names) if i not in chosen], [n for i, n in enumerate(names) if i in chosen])


# --- the whole dataset ---


@dataclass(frozen=True)
class Scan:
    """One subject's or case's files: the volume of the chosen modality and, for BraTS, its segmentation."""

    source: str  # hcp | brats
    subject: str  # HCP subject or BraTS case
    grade: str  # healthy | HGG | LGG | unknown
    image: Path
    seg: Path | None  # None for healthy scans


def find_scans(brain: BrainParams) -> list[Scan]:
    """Every HCP subject, then every BraTS case, each checked from its headers (files present, 3-D, one shape)."""
    scans = []
    for subject in hcp_subjects(brain.hcp_root, brain.hcp_subjects, brain.modality):
        geometry(subject.path)
        scans.append(Scan("hcp", subject.name, "healthy", subject.path, None))
    for case in brats_cases(brain.brats_root):
        check_case(case, brain.modality)
        scans.append(Scan("brats", case.name, case.grade, *require_files(case, brain.modality)))
    return scans


def prepare(brain: BrainParams, seed: int, out_dir: Path, split_path: Path, report_dir: Path) -> dict:
    """Write the brain dataset into out_dir (images.npy float16 (N, 1, 32, 32): HCP slices then BraTS slices;
    labels.npy; slices.csv; meta.json), its subject-wise split to split_path, and prepare.json and the
    orientation check orientation.png into report_dir. Volumes are read one at a time; nothing is replaced
    unless every volume was read. Returns the counts."""
    out_dir, split_path, report_dir = Path(out_dir), Path(split_path), Path(report_dir)
    scans = find_scans(brain)  # every file checked before the long loop
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        images, labels, dropped, qa = _read_all(scans, brain, tmp / "slices.csv")
        counts = _counts(scans, labels, dropped)
        train, val = subject_split([s.subject for s in scans if s.source == "hcp"], brain.val_fraction, seed)
        splits = _split_indices(scans, [len(part) for part in labels], val)
        counts["split"] = {part: len(idx) for part, idx in splits.items()}
        _write_images(images, tmp / "images.npy")
        np.save(tmp / "labels.npy", np.concatenate(labels))
        preprocessing = {
            **{k: v for k, v in brain.model_dump().items() if not k.startswith("demo_")},
            "recipe": RECIPE,
            "demo": any(is_demo(s.image) for s in scans),
            "counts": counts,
        }
        meta = {
            "dataset": DATASET,
            "n_train": counts["slices"]["hcp"],
            "n_test": counts["slices"]["brats"],
            "channels": 1,
            "size": IMAGE_SIZE,
            "classes": list(CLASSES),
            "latent_dim": brain.latent_dim,
            "preprocessing": preprocessing,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        report = {
            "preprocessing": preprocessing,
            "train_subjects": train,
            "val_subjects": val,
            "brats_cases": sorted(s.subject for s in scans if s.source == "brats"),
        }
        _replace_all(tmp, out_dir, splits, split_path, report, qa, report_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _read_all(scans: list[Scan], brain: BrainParams, csv_path: Path):
    """Per volume, its slices (float16) and their labels; one csv row per slice; the slices each filter
    dropped, per source; and one mid-brain slice per source for the orientation check."""
    images, labels, qa = [], [], {}
    dropped = {source: Counter() for source in ("hcp", "brats")}
    index = 0
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for scan in scans:
            volume = load_volume(scan.image)
            seg = load_segmentation(scan.seg) if scan.seg else None
            if not (volume > 0).any():
                raise DataError(
                    f"'{scan.image}' holds no voxel > 0; expected a skull-stripped volume whose brain "
                    "voxels are positive and whose background is 0"
                )
            if seg is not None and seg.shape != volume.shape:
                raise DataError(
                    f"case '{scan.subject}': '{scan.image}' has shape {volume.shape} but '{scan.seg}' "
                    f"has {seg.shape}; a volume and its segmentation must cover the same voxels"
                )
            got = volume_slices(volume, seg, brain)
            dropped[scan.source].update(got.dropped)
            if scan.source not in qa and len(got.z):
                qa[scan.source] = _qa_slice(scan, volume, got, brain.clip)
            del volume, seg  # before the next volume is read: memory holds one volume at a time
            images.append(got.images.astype(np.float16))
            labels.append(got.labels)
            writer.writerows(
                (index + i, scan.source, scan.subject, scan.grade, z, b, t, y)
                for i, (z, b, t, y) in enumerate(
                    zip(got.z.tolist(), got.brain_px.tolist(), got.tumour_px.tolist(), got.labels.tolist())
                )
            )
            index += len(got.z)
    return images, labels, {source: {f: counter[f] for f in FILTERS} for source, counter in dropped.items()}, qa


def _counts(scans: list[Scan], labels: list[np.ndarray], dropped: dict) -> dict:
    """The numbers a reader checks first; a DataError when there is nothing to train or test on."""
    slices = {source: sum(len(y) for s, y in zip(scans, labels) if s.source == source) for source in ("hcp", "brats")}
    tumour = sum(int(y.sum()) for s, y in zip(scans, labels) if s.source == "brats")
    counts = {
        "hcp_subjects": sum(s.source == "hcp" for s in scans),
        "brats_cases": {
            grade: sum(s.grade == grade for s in scans if s.source == "brats") for grade in (*GRADES, "unknown")
        },
        "slices": slices,
        "tumour_slices": tumour,
        "normal_test_slices": slices["brats"] - tumour,
        "dropped": dropped,
    }
    if not slices["hcp"] or not slices["brats"]:
        empty = "HCP" if not slices["hcp"] else "BraTS"
        raise DataError(
            f"no {empty} slice was kept (dropped per filter: {dropped}); lower brain.min_brain_px or brain.slice_offset"
        )
    if not tumour or tumour == slices["brats"]:
        raise DataError(
            f"the BraTS slices kept are all {'normal' if not tumour else 'tumour'} "
            f"({slices['brats']} slices), so no AUROC can be measured; check the segmentations, "
            "or change brain.label_rule / brain.dkfz_threshold / brain.slice_offset"
        )
    return counts


def _split_indices(scans: list[Scan], sizes: list[int], val_subjects: list[str]) -> dict[str, np.ndarray]:
    """Rows of images.npy by part: val = the held-out healthy subjects' slices; test = every BraTS slice."""
    held_out = set(val_subjects)
    parts = {"train": [], "val": [], "test": []}
    start = 0
    for scan, size in zip(scans, sizes):
        part = "test" if scan.source == "brats" else "val" if scan.subject in held_out else "train"
        parts[part].append(np.arange(start, start + size, dtype=np.int64))
        start += size
    return {part: np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64) for part, idx in parts.items()}


def _write_images(parts: list[np.ndarray], path: Path) -> None:
    n = sum(len(p) for p in parts)
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, 1, IMAGE_SIZE, IMAGE_SIZE))
    start = 0
    for part in parts:
        images[start : start + len(part), 0] = part
        start += len(part)
    images.flush()
    del images


def _replace_all(
    tmp: Path, out_dir: Path, splits: dict, split_path: Path, report: dict, qa: dict, report_dir: Path
) -> None:
    """Every output written under a temporary name first, then each moved into place."""
    split_path.parent.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    tmp_split = split_path.with_name(split_path.stem + ".tmp.npz")
    save_splits(tmp_split, {0: splits})
    tmp_report = report_dir / "prepare.json.tmp"
    tmp_report.write_text(json.dumps(report, indent=2) + "\n")
    tmp_figure = report_dir / "orientation.tmp.png"
    orientation_figure(qa, tmp_figure)
    swap_in(tmp, out_dir)
    os.replace(tmp_split, split_path)
    os.replace(tmp_report, report_dir / "prepare.json")
    os.replace(tmp_figure, report_dir / "orientation.png")


# --- the orientation check ---


def _qa_slice(scan: Scan, volume: np.ndarray, got: VolumeSlices, clip: float) -> dict:
    """The kept slice with the most brain, at full resolution (padded square) and as prepared (32x32)."""
    i = int(np.argmax(got.brain_px))
    z = int(got.z[i])
    full = pad_square(axial(normalise(volume, clip), [z]))[0]
    axcodes = "".join(nib.aff2axcodes(nib.load(scan.image).affine))
    return {
        "title": f"{scan.source} {scan.subject}, z {z} (file {axcodes} -> RAS)",
        "full": full,
        "small": got.images[i],
    }


def orientation_figure(qa: dict, path: Path) -> Path:
    """One row per source (HCP, BraTS): its mid-brain axial slice at full resolution and at 32x32, marked
    with the directions, so that a person can check that both datasets show the same orientation."""
    rows = [qa[source] for source in ("hcp", "brats") if source in qa]
    fig = Figure(figsize=(6.0, 3.0 * len(rows) + 0.3), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for r, row in enumerate(rows):
        for c, (key, label) in enumerate((("full", "full resolution"), ("small", f"{IMAGE_SIZE}x{IMAGE_SIZE}"))):
            ax = axes[r, c]
            ax.imshow(row[key], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{row['title']}\n{label}" if c == 0 else label, fontsize=8)
            for x, y, text in ((0.5, 0.97, "A"), (0.5, 0.03, "P"), (0.03, 0.5, "L"), (0.97, 0.5, "R")):
                ax.text(x, y, text, color="yellow", fontsize=9, ha="center", va="center", transform=ax.transAxes)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=fig.dpi)
    return Path(path)
