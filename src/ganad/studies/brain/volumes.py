"""The HCP and BraTS volumes users already have, found in their on-disk layouts and read with nibabel.

BraTS: every edition's names are accepted (2017-2021 `<case>_{t1,t1ce,t2,flair,seg}`,
2023+ `<case>-{t1n,t1c,t2w,t2f,seg}`, `.nii` or `.nii.gz`), mapped to one set of keys.
HCP: `<root>/<subject>/T1w/{T1w,T2w}_acpc_dc_restore_brain.nii.gz` (minimal preprocessing).

Every file is checked from its header before any voxel is read, so bad input stops
the preparation early with a `DataError` that names the file and the fix. Volumes
load in RAS orientation (as `nib.as_closest_canonical` gives): axis 2 is axial,
inferior to superior, whatever the file's affine. NIfTI files hold data only; reading one runs no code.
"""

from __future__ import annotations

import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ganad.errors import DataError
from ganad.studies.brain import DEMO_MARK

LATER_NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}  # BraTS 2023 renamed them
MODALITY_KEYS = {**{key: key for key in LATER_NAMES}, **{later: key for key, later in LATER_NAMES.items()}}
BRATS_FILE = re.compile(r"[_-](flair|t1ce|t1c|t1n|t1|t2w|t2f|t2|seg)\.nii(\.gz)?$", re.IGNORECASE)
MISNAMED_SEG = "W39_1998.09.19_Segm.nii"  # the segmentation of BraTS20_Training_355, as distributed
GRADES = ("HGG", "LGG")  # BraTS 2017-2019 sort cases into these folders; later editions do not
# 0 normal; 1 necrosis / non-enhancing core; 2 edema; 4 enhancing (2017-2021) or 3 enhancing (2023+);
# 4 is the resection cavity in the 2024 post-treatment set, which users must leave out themselves
BRATS_LABELS = range(5)
BRATS_SHAPE = (240, 240, 155)  # every BraTS edition: 1 mm, co-registered to the SRI24 atlas
HCP_FILES = {"t1": "T1w_acpc_dc_restore_brain.nii.gz", "t2": "T2w_acpc_dc_restore_brain.nii.gz"}
HCP_FOLDER = "T1w"  # native ACPC space (MNINonLinear/ holds the atlas-registered copies)


@dataclass(frozen=True)
class BratsCase:
    name: str  # the case folder's name, e.g. Brats17_2013_10_1 or BraTS-GLI-00000-000
    grade: str  # HGG, LGG, or unknown (editions without grade folders)
    folder: Path
    files: dict[str, Path] = field(compare=False)  # canonical key (t1, t1ce, t2, flair, seg) -> file


@dataclass(frozen=True)
class HcpSubject:
    name: str  # the subject folder's name, e.g. 100307
    path: Path  # the skull-stripped volume of the chosen modality


def brats_cases(root) -> list[BratsCase]:
    """Every case folder under `root` (searched at any depth), sorted by name."""
    root = _existing_folder(root, "BraTS root", "a folder of case folders (HGG/<case>/<case>_t2.nii.gz, ...)")
    folders = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not _hidden(p.relative_to(root)))
    cases = [case for folder in folders if (case := _case_in(folder))]
    if not cases:
        raise DataError(
            f"BraTS root '{root}' holds no case folders: expected folders such as "
            "HGG/Brats17_2013_10_1/ holding Brats17_2013_10_1_t2.nii.gz and Brats17_2013_10_1_seg.nii.gz "
            "(or BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz ...); point brain.brats_root at them"
        )
    names = [case.name for case in cases]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"BraTS root '{root}' holds case folders of the same name in several places: {twice}; "
            "keep one copy of each case"
        )
    return sorted(cases, key=lambda case: case.name)


def _hidden(path: Path) -> bool:
    """Hidden files and folders, and the AppleDouble copies macOS zips carry, look like cases but are not."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts)


def _case_in(folder: Path) -> BratsCase | None:
    files = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not _hidden(Path(p.name))):
        match = BRATS_FILE.search(path.name)
        key = MODALITY_KEYS[match.group(1).lower()] if match else "seg" if path.name == MISNAMED_SEG else None
        if key is None:
            continue
        if key in files:
            raise DataError(
                f"case folder '{folder}' holds two files for '{key}': '{files[key].name}' and "
                f"'{path.name}'; keep one (each case needs its own folder)"
            )
        files[key] = path
    if not files:
        return None
    grade = folder.parent.name.upper() if folder.parent.name.upper() in GRADES else "unknown"
    return BratsCase(folder.name, grade, folder, files)


def require_files(case: BratsCase, modality: str) -> tuple[Path, Path]:
    """The case's volume of `modality` and its segmentation, or a DataError naming the file expected."""
    found = []
    for key in (modality, "seg"):
        if key not in case.files:
            raise DataError(
                f"case folder '{case.folder}' has no {key} file: expected '{case.name}_{key}.nii.gz' "
                f"(or '{case.name}-{LATER_NAMES[key]}.nii.gz' in BraTS 2023+ names, or .nii) in it; "
                f"add the file or remove the case folder"
            )
        found.append(case.files[key])
    return found[0], found[1]


def hcp_subjects(root, subjects, modality: str) -> list[HcpSubject]:
    """The subjects' skull-stripped volumes of `modality`; `subjects` is 'all' (every folder holding T1w/) or
    a list of folder names."""
    root = _existing_folder(root, "HCP root", f"a folder of subjects (<subject>/{HCP_FOLDER}/{HCP_FILES[modality]})")
    if subjects == "all":
        names = sorted(p.name for p in root.iterdir() if (p / HCP_FOLDER).is_dir() and not _hidden(Path(p.name)))
        if not names:
            raise DataError(
                f"HCP root '{root}' holds no subject folders: expected <subject>/{HCP_FOLDER}/"
                f"{HCP_FILES[modality]} (e.g. 100307/{HCP_FOLDER}/{HCP_FILES[modality]}); "
                "point brain.hcp_root at the folder of subjects"
            )
    else:
        names = sorted({str(s) for s in subjects})
    found = []
    for name in names:
        path = root / name / HCP_FOLDER / HCP_FILES[modality]
        if not path.is_file():
            raise DataError(
                f"HCP subject '{name}' has no {modality} volume: expected '{path}'; download the "
                "subject's structural preprocessed data from db.humanconnectome.org, or leave it "
                "out of brain.hcp_subjects"
            )
        found.append(HcpSubject(name, path))
    return found


def _existing_folder(root, what: str, expected: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{what} '{root}' does not exist or is not a folder: expected {expected}; "
            "correct the path in params (brain section)"
        )
    return root


# --- headers and voxels ---


def _open(path: Path) -> nib.spatialimages.SpatialImage:
    try:
        return nib.load(path)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(
            f"'{path}' is not a readable NIfTI file ({err}); replace it with the original .nii or .nii.gz file"
        ) from err


def geometry(path: Path) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The volume's shape in RAS orientation and its voxel spacing (mm), from the header alone;
    a DataError unless it is a 3-D NIfTI file."""
    img = _open(path)
    if len(img.shape) != 3:
        raise DataError(
            f"'{path}' holds an array of shape {img.shape}, expected a 3-D volume (x, y, z); "
            "replace it with the original volume"
        )
    _check_size(path, img)
    shape, zooms = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, size, zoom in zip(nib.io_orientation(img.affine)[:, 0].astype(int), img.shape, img.header.get_zooms()):
        shape[axis], zooms[axis] = int(size), float(zoom)
    return tuple(shape), tuple(zooms)


def is_demo(path: Path) -> bool:
    """Whether the file is one of the offline demo's (its header's description says so): results from it are
    a demo of the pipeline, not a tumour benchmark."""
    return bytes(_open(path).header.get("descrip", b"")).decode("ascii", "replace").startswith(DEMO_MARK)


def check_case(case: BratsCase, modality: str) -> None:
    """The volume and segmentation of one case are 3-D NIfTI files of one shape; warn off the BraTS grid."""
    image, seg = require_files(case, modality)
    (shape, zooms), (seg_shape, _) = geometry(image), geometry(seg)
    if shape != seg_shape:
        raise DataError(
            f"case '{case.name}': '{image}' has shape {shape} but '{seg}' has {seg_shape} "
            "(RAS order); a volume and its segmentation must cover the same voxels"
        )
    if shape != BRATS_SHAPE or not np.allclose(zooms, 1.0, atol=0.05):
        warnings.warn(
            f"'{image}' has shape {shape} and spacing {zooms} mm; BraTS volumes are {BRATS_SHAPE} at 1 mm", stacklevel=2
        )


def load_volume(path: Path) -> np.ndarray:
    """Intensities as float32 in RAS orientation (axis 2 axial, inferior to superior)."""
    data = _voxels(path, np.float32)
    if not np.isfinite(data).all():
        raise DataError(f"'{path}' holds NaN or infinite voxels; replace it with the original volume")
    return data


def load_segmentation(path: Path) -> np.ndarray:
    """BraTS labels as int16 in RAS orientation; a DataError naming any value outside {0, 1, 2, 3, 4}."""
    labels = _voxels(path)  # the file's own type: uint8 labels stay small until the int16 copy
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            raise DataError(f"segmentation '{path}' holds NaN or infinite voxels; replace it with the original file")
        labels = np.rint(labels)
    if labels.size and (labels.min() < BRATS_LABELS.start or labels.max() >= BRATS_LABELS.stop):
        outside = (labels < BRATS_LABELS.start) | (labels >= BRATS_LABELS.stop)
        unexpected = [int(v) for v in np.unique(labels[outside])[:10]]
        raise DataError(
            f"segmentation '{path}' holds labels {unexpected}; BraTS "
            f"segmentations hold only {list(BRATS_LABELS)} (0 normal, 1 necrosis, 2 edema, 3 or 4 "
            "enhancing tumour); check that the file is the case's segmentation (<case>_seg.nii.gz)"
        )
    return labels.astype(np.int16)


MAX_VOXELS = 512**3  # larger headers are damaged or not a brain volume: reading them would exhaust memory


def _check_size(path: Path, img) -> None:
    """A header that declares more voxels than a brain volume holds stops before any voxel is read."""
    voxels = int(np.prod(img.shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise DataError(
            f"'{path}' declares {'x'.join(map(str, img.shape))} voxels, more than a brain MRI volume holds (at "
            "most 512x512x512); check that it is a T1/T2/FLAIR volume or a segmentation, or replace the damaged "
            "file"
        )


def _voxels(path: Path, dtype=None) -> np.ndarray:
    """The voxels of a 3-D NIfTI file in RAS orientation, as `dtype` (None: the file's type, scaling applied)."""
    img = _open(path)
    if len(img.shape) != 3:
        raise DataError(f"'{path}' holds an array of shape {img.shape}, expected a 3-D volume (x, y, z)")
    _check_size(path, img)
    try:
        data = np.asarray(img.dataobj, dtype=dtype)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(f"'{path}' could not be read ({err}); the file is truncated or damaged, replace it") from err
    # what nib.as_closest_canonical does, applied to the array read once (flips and a transpose: views, no
    # copy) rather than to an image that would hold a second copy of the volume in the file's own type
    return nib.orientations.apply_orientation(data, nib.io_orientation(img.affine))
