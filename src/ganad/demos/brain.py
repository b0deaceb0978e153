"""The offline brain-MRI demo: healthy pseudo-subjects in the HCP layout, tumour cases in the BraTS 2017 layout.

A demo of the pipeline, not a tumour benchmark. No package ships a BraTS-like volume, but
real healthy anatomy ships offline: the MNI152 2009a symmetric T1 template and its grey- and
white-matter maps inside the nilearn wheel (a pip dependency) and, where Debian's
`mricron-data` is installed, the Colin27 single-subject T1 (`ch2bet`). `build` warps them at
random into pseudo-subjects and writes them, seeded, in the exact on-disk layouts that the
readers of `ganad.studies.brain.volumes` take, so the whole brain pipeline runs offline:

- `hcp/<100000+i>/T1w/{T1w,T2w}_acpc_dc_restore_brain.nii.gz` and `brainmask_fs.nii.gz`:
  0.7 mm, 260x311x260, LAS, as the HCP minimal preprocessing writes them;
- `brats/{HGG,LGG}/Brats17_DEMO_<i>_1/Brats17_DEMO_<i>_1_{flair,t1,t1ce,t2,seg}.nii.gz`:
  1 mm, 240x240x155, LPS, seg labels 1 (necrotic / non-enhancing core), 2 (edema),
  4 (enhancing tumour), as BraTS 2017 ships them;
- `demo_manifest.json`: sources, seeds, counts, shapes and what every file really is.

What the files really are: "t1" is the template's T1 contrast. "t2" and "flair" are computed
from tissue maps (CSF = brain - grey matter - white matter): T2 with CSF bright, grey matter
mid and white matter dark, FLAIR the same with CSF suppressed. "t1ce" is that T1 with the
enhancing rim bright. Lesions are synthetic, randomly deformed ellipsoids.

Every volume is a function of `(demo_seed, kind, index)` only, so the same seed gives
byte-identical files (gzip with mtime 0, whatever `workers`), and adding subjects leaves the
others as they were. Speed (a few seconds a volume on one core): the warp is one smooth field
of base-voxel coordinates, evaluated slab by slab with small matrix products; the brain mask
is interpolated at every other voxel and exactly only at the brain's surface; the contrasts
are interpolated (scipy's map_coordinates, order 1) at brain voxels only, from the same
coordinates; everything is float32 and written as int16 with gzip level 1.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from ganad.studies.brain import DEMO_MARK, BrainParams

STATEMENT = (
    "demo of the pipeline, not a tumour benchmark: the anatomy is a template warped at random, "
    "the lesions are synthetic, the 't2' contrast is derived from tissue maps"
)
HEADER_NOTE = f"{DEMO_MARK}: warped template, synthetic lesions; not a benchmark".encode()  # NIfTI descrip, <= 80 bytes

MNI152_FILES = {  # inside the nilearn wheel, under nilearn/datasets/data/
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
COLIN27_FILE = Path("/usr/share/mricron/templates/ch2bet.nii.gz")  # Debian mricron-data, brain-extracted

# relative signal of (CSF, grey matter, white matter): T2 (fluid bright) and FLAIR (fluid suppressed)
TISSUE_SIGNAL = {"t2": (1.0, 0.5, 0.33), "flair": (0.1, 0.62, 0.45)}

# random pose and shape of a pseudo-subject (the base brain pulled into the output grid)
ROTATION_DEG = 10.0
SCALE = 0.10
SHIFT_MM = 5.0
ELASTIC_SPACING_MM = 40.0  # control-point spacing of the smooth displacement field
ELASTIC_MM = 6.0  # standard deviation of its control values (about 2 mm rms after the spline's smoothing)

# what the scanner adds
INTENSITY = 100.0  # a contrast's brain median in the written files (int16; noise sd 3: small files)
BIAS_CONTROLS = 4  # per axis: a field varying over the whole head
BIAS_LOG_SD = 0.2  # control values of the log bias field (about +-10 % after smoothing)
GAIN = 0.15  # uniform in 1 +- GAIN, per contrast
NOISE = 0.03  # Gaussian noise sd inside the brain, as a fraction of the brain median

HEALTHY, HGG, LGG = 0, 1, 2  # the kinds of volume; each draws from its own stream of the demo seed
HCP_FIRST_SUBJECT = 100000
SLAB = 8  # output planes interpolated at once: coordinates stay a few tens of MB


@dataclass(frozen=True)
class Grid:
    """An output volume's voxel grid, and where the brain's centre goes."""

    shape: tuple[int, int, int]
    affine: np.ndarray  # voxel -> world mm (RAS+, nibabel's convention)
    brain_centre: tuple[float, float, float] | None = None  # world mm; None: where the base anatomy has it

    def centre(self) -> np.ndarray:
        """World mm of the middle of the field of view."""
        return self.affine[:3, :3] @ ((np.array(self.shape) - 1) / 2) + self.affine[:3, 3]

    def voxel_mm(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def scaled(self, factor: float) -> Grid:
        """The same field of view and orientation on `factor` times as many voxels per axis (tests only)."""
        if factor == 1:
            return self
        shape = tuple(max(8, round(n * factor)) for n in self.shape)
        linear = self.affine[:3, :3] * (np.array(self.shape) / np.array(shape))
        affine = np.eye(4)
        affine[:3, :3] = linear
        affine[:3, 3] = self.centre() - linear @ ((np.array(shape) - 1) / 2)
        return Grid(shape, affine, self.brain_centre)


# HCP minimal preprocessing, T1w/ (ACPC) space: 0.7 mm LAS, world origin at the anterior commissure as in the
# templates' MNI space, so the brain stays where the template has it
HCP_GRID = Grid((260, 311, 260), np.array([[-0.7, 0, 0, 90], [0, 0.7, 0, -126], [0, 0, 0.7, -72], [0, 0, 0, 1.0]]))
# BraTS (SRI24 space): 1 mm, nibabel reads the files as LPS with translation (0, 239, 0); the brain centred
# in-plane, its top near slice 148 (the template's brain runs 155 mm from the medulla to the vertex)
BRATS_GRID = Grid(
    (240, 240, 155),
    np.array([[-1.0, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]]),
    brain_centre=(-119.5, 119.5, 70.0),
)


# --- the base anatomy ---


def brain_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """The bounding box of the mask's voxels."""
    spans = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    return tuple(slice(int(s[0]), int(s[-1]) + 1) for s in spans)


@dataclass
class Anatomy:
    """One real healthy brain in its own space: relative contrasts (brain median 1, 0 outside) and its mask."""

    name: str
    source: dict  # for the manifest
    affine: np.ndarray  # voxel -> world mm
    mask: np.ndarray  # float32 0/1, interpolated like the contrasts and thresholded at one half
    contrasts: dict[str, np.ndarray]  # t1, t2, flair: float32

    def brain_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The brain's bounding box in voxels: first and last index per axis."""
        box = brain_box(self.mask > 0)
        return np.array([b.start for b in box]), np.array([b.stop - 1 for b in box])

    def centre(self) -> np.ndarray:
        """World mm of the centre of the brain's bounding box."""
        first, last = self.brain_box()
        return self.affine[:3, :3] @ ((first + last) / 2) + self.affine[:3, 3]


def nilearn_data() -> Path:
    """nilearn's packaged data folder, found without importing nilearn (slow; it pulls scikit-learn and pandas)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the brain demo needs nilearn (pip install nilearn): it ships the MNI152 template")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def read_float(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def cropped(volumes: list[np.ndarray], affine: np.ndarray, brain: np.ndarray):
    """The volumes and brain cut to the brain's bounding box plus a voxel of zeros (half the voxels of a
    template, and interpolation beyond its edge reads zeros), with the affine of the cut."""
    box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in brain_box(brain))
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [b.start for b in box] + affine[:3, 3]
    return [v[box] for v in volumes], shifted, brain[box]


def contrasts_from_tissue(t1: np.ndarray, brain: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> dict:
    """T1 as it is; T2 and FLAIR from the tissue fractions (CSF is what the brain has left); brain median 1."""
    inside = brain > 0
    gm, wm = np.clip(gm[inside], 0, 1), np.clip(wm[inside], 0, 1)
    csf = np.clip(1 - gm - wm, 0, 1)
    values = {"t1": t1[inside]}
    for name, (s_csf, s_gm, s_wm) in TISSUE_SIGNAL.items():
        values[name] = s_csf * csf + s_gm * gm + s_wm * wm
    contrasts = {}
    for name, v in values.items():
        contrasts[name] = np.zeros(brain.shape, np.float32)
        contrasts[name][inside] = v / np.median(v)
    return contrasts


def brain_of(t1: np.ndarray, affine: np.ndarray, volumes: list[np.ndarray]):
    """The brain of a brain-extracted T1 (nonzero voxels, holes of dark fluid at 0 filled), cut as `cropped` does."""
    volumes, affine, brain = cropped([t1, *volumes], affine, t1 > 0)
    return volumes, affine, ndimage.binary_fill_holes(brain)


def mni152_source() -> dict:
    return {
        "name": "MNI152 2009a symmetric T1 template with grey- and white-matter maps (ICBM 2009a)",
        "package": "nilearn",
        "version": importlib.metadata.version("nilearn"),
        "files": [f"nilearn/datasets/data/{f}" for f in MNI152_FILES.values()],
    }


def mni152() -> Anatomy:
    """The MNI ICBM152 2009a nonlinear symmetric template, brain only, with its tissue probability maps."""
    folder = nilearn_data()
    t1, affine = read_float(folder / MNI152_FILES["t1"])
    gm, gm_affine = read_float(folder / MNI152_FILES["gm"])
    wm, wm_affine = read_float(folder / MNI152_FILES["wm"])
    if not (gm.shape == wm.shape == t1.shape and np.allclose(gm_affine, affine) and np.allclose(wm_affine, affine)):
        raise ValueError(f"nilearn's MNI152 tissue maps are not on the T1's grid ({folder})")
    (t1, gm, wm), affine, brain = brain_of(t1, affine, [gm, wm])
    contrasts = contrasts_from_tissue(t1, brain, gm / max(gm.max(), 1e-6), wm / max(wm.max(), 1e-6))
    return Anatomy("MNI152 2009a", mni152_source(), affine, brain.astype(np.float32), contrasts)


def tissue_from_t1(t1: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey- and white-matter fractions of a T1 with no tissue maps: three intensity classes (CSF < GM < WM,
    1-D k-means on the brain's intensities), fractions ramping linearly between the class means."""
    values = t1[brain]
    means = np.quantile(values, [0.1, 0.5, 0.9])
    for _ in range(20):
        nearest = np.argmin(np.abs(values[:, None] - means[None, :]), axis=1)
        means = np.array([values[nearest == c].mean() if (nearest == c).any() else means[c] for c in range(3)])
    m_csf, m_gm, m_wm = np.sort(means)
    wm = np.clip((t1 - m_gm) / max(m_wm - m_gm, 1e-6), 0, 1)
    csf = np.clip((m_gm - t1) / max(m_gm - m_csf, 1e-6), 0, 1)
    return (1 - wm - csf) * brain, wm * brain


def colin27_source() -> dict:
    return {
        "name": "Colin27 single-subject T1, brain-extracted (ch2bet); tissue fractions from its intensities",
        "package": "mricron-data (Debian)",
        "files": [str(COLIN27_FILE)],
    }


def colin27() -> Anatomy | None:
    """Colin27 (ch2bet), where Debian's mricron-data is installed: a second real subject; else None."""
    if not COLIN27_FILE.is_file():
        return None
    t1, affine = read_float(COLIN27_FILE)
    (t1,), affine, brain = brain_of(t1, affine, [])
    gm, wm = tissue_from_t1(t1, brain)
    return Anatomy(
        "Colin27", colin27_source(), affine, brain.astype(np.float32), contrasts_from_tissue(t1, brain, gm, wm)
    )


def base_anatomies() -> list[Anatomy]:
    return [a for a in (mni152(), colin27()) if a is not None]


def base_sources() -> list[dict]:
    """What `base_anatomies` reads, without reading it."""
    return [mni152_source()] + ([colin27_source()] if COLIN27_FILE.is_file() else [])


# --- smooth random fields and warps: output voxel -> base voxel ---


def spline_basis(positions: np.ndarray, n: int, controls: int) -> np.ndarray:
    """(len(positions), controls) cubic B-spline weights at grid positions of an axis of n voxels: control points
    spread evenly with one spacing beyond both ends, so the weights sum to one over the axis."""
    t = np.asarray(positions, np.float64)[:, None] * ((controls - 3) / max(n - 1, 1)) - (np.arange(controls) - 1)
    u = np.abs(t)
    return np.where(u < 1, 2 / 3 - u**2 + u**3 / 2, np.where(u < 2, (2 - u) ** 3 / 6, 0.0)).astype(np.float32)


@dataclass
class SmoothField:
    """A random smooth field over a grid: cubic B-splines through random values on a coarse control grid."""

    values: np.ndarray  # (components, controls along x, y, z), float32
    shape: tuple[int, int, int]  # the grid it spans

    @classmethod
    def random(cls, rng: np.random.Generator, shape, controls, sd: float, components: int = 1) -> SmoothField:
        controls = [controls] * 3 if isinstance(controls, int) else list(controls)
        return cls((rng.standard_normal((components, *controls)) * sd).astype(np.float32), tuple(shape))

    def at(self, rows: np.ndarray, cols: np.ndarray, planes: np.ndarray) -> np.ndarray:
        """(components, len(rows), len(cols), len(planes)): the field on that block of grid positions,
        one axis at a time (three small matrix products)."""
        bx, by, bz = (spline_basis(p, n, c) for p, n, c in zip((rows, cols, planes), self.shape, self.values.shape[1:]))
        components = self.values.shape[0]
        out = np.matmul(by, self.values @ bz.T)  # (components, cx, y, z)
        out = np.matmul(bx, out.reshape(components, bx.shape[1], -1))
        return out.reshape(components, len(rows), len(cols), len(planes))

    def on_box(self, box) -> np.ndarray:
        return self.at(*(np.arange(b.start, b.stop) for b in box))

    def slabs(self, box, rows: int):
        """(block, values) for each slab of `rows` x-planes of the box: values (components, voxels of the block in
        C order). The y and z axes are contracted once, so a slab costs one matrix product per component."""
        cols, planes = (np.arange(b.start, b.stop) for b in box[1:])
        by, bz = (spline_basis(p, n, c) for p, n, c in zip((cols, planes), self.shape[1:], self.values.shape[2:]))
        components, controls = self.values.shape[:2]
        partial = np.matmul(by, self.values @ bz.T).reshape(components, controls, -1)
        for start in range(box[0].start, box[0].stop, rows):
            stop = min(start + rows, box[0].stop)
            bx = spline_basis(np.arange(start, stop), self.shape[0], controls)
            values = np.empty((components, stop - start, partial.shape[2]), np.float32)
            for d in range(components):
                np.matmul(bx, partial[d], out=values[d])
            yield (slice(start, stop), box[1], box[2]), values.reshape(components, -1)


def rotation(degrees: np.ndarray) -> np.ndarray:
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_warp(rng: np.random.Generator, anatomy: Anatomy, grid: Grid) -> SmoothField:
    """Where each output voxel takes its value from: the base-voxel coordinates of every output voxel, as a smooth
    field. A random rotation (+-10 deg per axis), scale (+-10 % per axis) and shift (+-5 mm) about the brain's
    centre, plus an elastic displacement (cubic B-splines on a 40 mm control grid). Cubic B-splines reproduce
    linear functions exactly, so the affine part is folded into the control values: the coordinates of a block of
    voxels then cost a few small matrix products and nothing else."""
    linear = rotation(rng.uniform(-ROTATION_DEG, ROTATION_DEG, 3)) @ np.diag(rng.uniform(1 - SCALE, 1 + SCALE, 3))
    shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 3)
    world = np.eye(4)  # output world -> base world
    world[:3, :3] = linear
    target = anatomy.centre() if grid.brain_centre is None else np.array(grid.brain_centre)
    world[:3, 3] = anatomy.centre() + shift - linear @ target
    to_base = np.linalg.inv(anatomy.affine)
    matrix = to_base @ world @ grid.affine  # output voxel -> base voxel
    field_mm = np.array(grid.shape) * grid.voxel_mm()
    controls = [int(math.ceil(f / ELASTIC_SPACING_MM)) + 3 for f in field_mm]
    field = SmoothField.random(rng, grid.shape, controls, ELASTIC_MM, components=3)  # displacement, world mm
    values = np.einsum("ed,dabc->eabc", to_base[:3, :3], field.values.astype(np.float64))
    nodes = [(np.arange(c) - 1) * ((n - 1) / (c - 3)) for n, c in zip(grid.shape, controls)]  # output voxels
    at_nodes = np.stack(np.meshgrid(*nodes, np.ones(1), indexing="ij"), axis=-1)[..., 0, :] @ matrix[:3].T
    field.values = (values + np.moveaxis(at_nodes, -1, 0)).astype(np.float32)
    return field


def upsampled(coarse: np.ndarray) -> np.ndarray:
    """Linear interpolation at twice the sampling along every axis: n samples -> 2n - 1."""
    out = coarse
    for axis in range(3):
        shape = list(out.shape)
        shape[axis] = 2 * shape[axis] - 1
        finer = np.empty(shape, np.float32)
        even = [slice(None)] * 3
        odd = [slice(None)] * 3
        even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
        finer[tuple(even)] = out
        finer[tuple(odd)] = 0.5 * (np.delete(out, -1, axis=axis) + np.delete(out, 0, axis=axis))
        out = finer
    return out


def mask_estimate(anatomy: Anatomy, warp: SmoothField, grid: Grid):
    """Where the brain lies on the output grid, cheaply: the base mask interpolated at every other output voxel
    (an eighth of the work) and linearly upsampled. Where that is 1 the voxel is brain, where 0 it is not (the
    base mask is solid), and in between, a thin shell at the brain's surface, it is unsure. A brain voxel lies
    within one coarse step of a coarse sample that touches the base brain, which bounds the box exactly.
    The box, and `certain` and `unsure` (bool arrays of the box's shape)."""
    steps = [np.arange(0, n + 1, 2) for n in grid.shape]  # one sample beyond an even-sized axis
    coarse = ndimage.map_coordinates(anatomy.mask, warp.at(*steps), order=1, prefilter=False)
    support = brain_box(coarse > 0)
    if any(s.stop <= s.start for s in support):
        raise ValueError(f"the warped {anatomy.name} brain misses the output grid")
    coarse_box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(support, coarse.shape))
    box = tuple(slice(2 * c.start, min(2 * (c.stop - 1) + 1, n)) for c, n in zip(coarse_box, grid.shape))
    fine = upsampled(coarse[coarse_box])[tuple(slice(0, b.stop - b.start) for b in box)]
    return box, fine >= 1, (fine > 0) & (fine < 1)


@dataclass
class Subject:
    """A pseudo-subject on an output grid: its brain mask and each contrast's values at the brain voxels
    (C order, the order of `voxels`); everything outside the brain is 0."""

    grid: Grid
    mask: np.ndarray  # bool, the grid's shape
    box: tuple[slice, slice, slice]  # a box holding the brain
    voxels: np.ndarray  # flat indices of the brain voxels in the grid
    box_voxels: np.ndarray  # the same voxels' flat indices in the box
    contrasts: dict[str, np.ndarray]  # name -> float32 values at `voxels`

    def volume(self, name: str) -> np.ndarray:
        volume = np.zeros(self.grid.shape, np.float32)
        volume.ravel()[self.voxels] = self.contrasts[name]
        return volume


def resample(anatomy: Anatomy, warp: SmoothField, grid: Grid, names) -> Subject:
    """The warped base brain on the output grid, contrasts `names`: trilinear (map_coordinates, order 1) at brain
    voxels only, from one block of coordinates per slab shared by the mask's unsure voxels and every contrast.
    A voxel is brain where the interpolated base mask reaches one half, so every contrast is at least half
    its lowest brain value there."""
    box, inside, unsure = mask_estimate(anatomy, warp, grid)
    values = {name: [] for name in names}
    for block, coords in warp.slabs(box, SLAB):
        rows = slice(block[0].start - box[0].start, block[0].stop - box[0].start)
        brain, shell = inside[rows].reshape(-1), np.flatnonzero(unsure[rows])
        brain[shell] = ndimage.map_coordinates(anatomy.mask, coords[:, shell], order=1, prefilter=False) >= 0.5
        points = coords[:, np.flatnonzero(brain)]
        for name in names:
            values[name].append(ndimage.map_coordinates(anatomy.contrasts[name], points, order=1, prefilter=False))
    mask = np.zeros(grid.shape, bool)
    mask[box] = inside
    contrasts = {name: np.concatenate(v) for name, v in values.items()}
    return Subject(grid, mask, box, np.flatnonzero(mask), np.flatnonzero(inside), contrasts)


# --- synthetic lesions (BraTS labels) ---


@dataclass(frozen=True)
class LesionKind:
    """Sizes of a lesion: the tumour core an ellipsoid, the edema a larger one around it, the enhancing
    tumour a rim at the core's surface (none: a non-enhancing core)."""

    core_diameter_mm: tuple[float, float]
    edema_factor: tuple[float, float]  # edema semi-axes over the core's
    rim_mm: tuple[float, float] | None


LESIONS = {
    HGG: LesionKind((10.0, 35.0), (1.3, 2.0), (2.0, 4.0)),  # necrotic core, enhancing rim, wide edema
    LGG: LesionKind((10.0, 25.0), (1.1, 1.5), None),
}  # smaller, non-enhancing
LESION_DEFORM = 0.3  # sd of the smooth log-scale field that bends each ellipsoid
LESION_BEND = 1.5  # that field is clipped at +-LESION_BEND sd: the lesion's reach is bounded
# intensity of each label, as a multiple of the contrast's brain median, and how much it replaces the anatomy:
# edema bright on t2 and flair, the enhancing rim bright on t1ce, the core dark on t1 and bright on t2
LESION_SIGNAL = {
    "t1": {1: 0.45, 2: 0.8, 4: 0.85},
    "t1ce": {1: 0.45, 2: 0.8, 4: 1.9},
    "t2": {1: 2.2, 2: 1.7, 4: 1.4},
    "flair": {1: 0.8, 2: 1.9, 4: 1.5},
}
LESION_WEIGHT = {1: 0.95, 2: 0.85, 4: 0.9}
LABEL_ORDER = (2, 1, 4)  # a later lesion's edema never covers an earlier lesion's core


def place_lesion(rng: np.random.Generator, mask: np.ndarray, grid: Grid, kind: LesionKind, brain_voxels: np.ndarray):
    """One lesion: its labels (uint8, 0/1/2/4) and edema weight on a box of the grid, and the box.
    The centre is a brain voxel around which the core's six axis ends lie in the brain, where one is found."""
    voxel = grid.voxel_mm()
    radii = rng.uniform(*kind.core_diameter_mm, 3) / 2
    axes = rotation(rng.uniform(-180, 180, 3))
    edema_radii = radii * rng.uniform(*kind.edema_factor, 3)
    for _ in range(200):
        centre = np.array(np.unravel_index(brain_voxels[rng.integers(len(brain_voxels))], mask.shape))
        ends = centre + np.concatenate([axes * radii, -axes * radii], axis=1).T / voxel
        ends = np.clip(np.rint(ends).astype(int), 0, np.array(mask.shape) - 1)
        if mask[tuple(ends.T)].all():
            break
    reach = np.ceil(edema_radii.max() * math.exp(LESION_DEFORM * LESION_BEND) / voxel).astype(int) + 1
    start = np.maximum(centre - reach, 0)
    stop = np.minimum(centre + reach + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    offsets = [((np.arange(a, b) - c) * v).astype(np.float32) for a, b, c, v in zip(start, stop, centre, voxel)]
    local = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1) @ axes.astype(np.float32)  # mm along its axes
    bend = SmoothField.random(rng, tuple(stop - start), 5, 1.0, components=2).on_box(
        tuple(slice(0, n) for n in stop - start)
    )
    bend = np.exp(LESION_DEFORM * np.clip(bend, -LESION_BEND, LESION_BEND))
    core = np.sqrt(((local / radii.astype(np.float32)) ** 2).sum(axis=-1)) * bend[0]  # < 1 inside the core
    edema = np.sqrt(((local / edema_radii.astype(np.float32)) ** 2).sum(axis=-1)) * bend[1]
    inside = mask[box]
    labels = np.zeros(core.shape, np.uint8)
    labels[(edema < 1) & inside] = 2
    if kind.rim_mm is None:
        labels[(core < 1) & inside] = 1
    else:
        rim = rng.uniform(*kind.rim_mm) / radii.mean()
        labels[(core < 1) & inside] = 4
        labels[(core < 1 - rim) & inside] = 1
    edema_weight = np.clip((1 - edema) / 0.1, 0, 1)  # the edema's signal fades at its border
    return labels, edema_weight, box


def add_lesions(rng: np.random.Generator, subject: Subject, kind: LesionKind) -> np.ndarray:
    """1 or 2 lesions: labels written into a new seg, intensities changed in every contrast. The seg (uint8)."""
    grid, mask = subject.grid, subject.mask
    volumes = {name: subject.volume(name) for name in subject.contrasts}
    seg = np.zeros(grid.shape, np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        labels, edema_weight, box = place_lesion(rng, mask, grid, kind, subject.voxels)
        texture = 1 + SmoothField.random(rng, labels.shape, 8, 0.1).on_box(tuple(slice(0, n) for n in labels.shape))[0]
        current = seg[box]
        for label in LABEL_ORDER:
            where = (labels == label) & ((current == 0) | (label != 2))  # edema never covers a core
            current[where] = label
            weight = LESION_WEIGHT[label] * (edema_weight[where] if label == 2 else 1)
            for name, volume in volumes.items():
                part = volume[box]
                part[where] = (1 - weight) * part[where] + weight * LESION_SIGNAL[name][label] * texture[where]
    for name, volume in volumes.items():
        subject.contrasts[name] = volume.ravel()[subject.voxels]
    return seg


# --- what the scanner adds, and the files ---


def scanned(rng: np.random.Generator, subject: Subject, name: str) -> np.ndarray:
    """The contrast as written: a smooth multiplicative bias field, a gain and Gaussian noise inside the brain;
    brain median about INTENSITY, int16, at least 1 in the brain (where the readers find the brain) and
    exactly 0 outside it."""
    bias_field = SmoothField.random(rng, subject.grid.shape, BIAS_CONTROLS, BIAS_LOG_SD)
    gain = rng.uniform(1 - GAIN, 1 + GAIN)
    signal = np.exp(bias_field.on_box(subject.box)[0].ravel()[subject.box_voxels])
    signal *= np.float32(gain * INTENSITY)
    signal *= subject.contrasts[name]
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noise *= np.float32(NOISE * INTENSITY)
    signal += noise
    np.clip(np.rint(signal, out=signal), 1, np.iinfo(np.int16).max, out=signal)
    out = np.zeros(subject.grid.shape, np.int16)
    out.ravel()[subject.voxels] = signal.astype(np.int16)
    return out


def write_nifti(path: Path, data: np.ndarray, grid: Grid) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, grid.affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = HEADER_NOTE
    image.set_qform(grid.affine, code=1)
    image.set_sform(grid.affine, code=1)
    nib.save(image, path)


@contextmanager
def gzip_level(level: int):
    """nibabel's gzip level for the files written inside (1: fast; the volumes are mostly zeros and noise)."""
    opener = nib.openers.Opener
    before = opener.default_compresslevel
    opener.default_compresslevel = level
    try:
        yield
    finally:
        opener.default_compresslevel = before


# --- the demo ---


def healthy_subject(out_root: Path, subject: str, anatomy: Anatomy, rng: np.random.Generator, grid: Grid) -> dict:
    """One HCP pseudo-subject: T1w (the template's T1), T2w (from tissue maps) and brainmask_fs."""
    warped = resample(anatomy, random_warp(rng, anatomy, grid), grid, ("t1", "t2"))
    folder = out_root / "hcp" / subject / "T1w"
    write_nifti(folder / "T1w_acpc_dc_restore_brain.nii.gz", scanned(rng, warped, "t1"), grid)
    write_nifti(folder / "T2w_acpc_dc_restore_brain.nii.gz", scanned(rng, warped, "t2"), grid)
    write_nifti(folder / "brainmask_fs.nii.gz", warped.mask.astype(np.uint8), grid)
    return {"subject": subject, "base": anatomy.name, "brain_voxels": len(warped.voxels)}


def tumour_case(
    out_root: Path, grade: str, case: str, kind: int, anatomy: Anatomy, rng: np.random.Generator, grid: Grid
) -> dict:
    """One BraTS case: a pseudo-subject with 1 or 2 synthetic lesions, four contrasts and the seg."""
    warped = resample(anatomy, random_warp(rng, anatomy, grid), grid, ("t1", "t2", "flair"))
    warped.contrasts["t1ce"] = warped.contrasts["t1"].copy()  # no contrast agent outside the lesions
    seg = add_lesions(rng, warped, LESIONS[kind])
    folder = out_root / "brats" / grade / case
    for name in ("flair", "t1", "t1ce", "t2"):
        write_nifti(folder / f"{case}_{name}.nii.gz", scanned(rng, warped, name), grid)
    write_nifti(folder / f"{case}_seg.nii.gz", seg, grid)
    labels, counts = np.unique(seg[seg > 0], return_counts=True)
    return {
        "case": case,
        "grade": grade,
        "base": anatomy.name,
        "brain_voxels": len(warped.voxels),
        "tumour_voxels": {str(int(label)): int(n) for label, n in zip(labels, counts)},
    }


def grid_record(grid: Grid) -> dict:
    return {
        "shape": list(grid.shape),
        "voxel_mm": [round(float(v), 6) for v in grid.voxel_mm()],
        "axcodes": "".join(nib.aff2axcodes(grid.affine)),
        "affine": grid.affine.round(6).tolist(),
    }


@dataclass(frozen=True)
class Volume:
    """One pseudo-subject of the demo, a function of the demo seed and of these alone."""

    kind: int  # HEALTHY, HGG or LGG
    index: int  # within its kind: its random stream, and (modulo their count) its base anatomy
    name: str  # its HCP subject or BraTS case folder


def volumes_of(brain: BrainParams) -> list[Volume]:
    volumes = [Volume(HEALTHY, i, str(HCP_FIRST_SUBJECT + i)) for i in range(brain.demo_healthy)]
    # case numbers run on from HGG to LGG (names stay unique across grades); the index counts within a grade
    cases = [(HGG, i) for i in range(brain.demo_hgg)] + [(LGG, i) for i in range(brain.demo_lgg)]
    return volumes + [Volume(kind, i, f"Brats17_DEMO_{n}_1") for n, (kind, i) in enumerate(cases)]


def write_volume(out_root: Path, volume: Volume, seed: int, grid_scale: float, anatomies: list[Anatomy]) -> dict:
    """Write one pseudo-subject's files; what the manifest says of it."""
    rng = np.random.default_rng([seed, volume.kind, volume.index])
    anatomy = anatomies[volume.index % len(anatomies)]
    # one BLAS thread: the matrix products are small, and on a shared machine a waiting thread costs more
    with gzip_level(1), threadpool_limits(1):
        if volume.kind == HEALTHY:
            return healthy_subject(out_root, volume.name, anatomy, rng, HCP_GRID.scaled(grid_scale))
        grade = "HGG" if volume.kind == HGG else "LGG"
        return tumour_case(out_root, grade, volume.name, volume.kind, anatomy, rng, BRATS_GRID.scaled(grid_scale))


worker_anatomies: list[Anatomy] = []  # a worker process's base anatomies, read once when it starts


def start_worker() -> None:
    worker_anatomies[:] = base_anatomies()


def write_volume_in_worker(args: tuple) -> dict:
    return write_volume(*args, worker_anatomies)


def build(out_root: Path, brain: BrainParams, grid_scale: float = 1.0, workers: int = 1) -> dict:
    """Write the demo into `out_root` (absent or empty): `brain.demo_healthy` HCP pseudo-subjects and
    `brain.demo_hgg` + `brain.demo_lgg` BraTS cases, seeded by `brain.demo_seed`; `workers` processes write
    volumes at once (the files do not depend on it). The manifest, also written as demo_manifest.json.
    `grid_scale` < 1 shrinks both grids (same field of view, fewer voxels): tests only."""
    out_root = Path(out_root)
    if out_root.exists() and any(out_root.iterdir()):
        raise FileExistsError(f"'{out_root}' is not empty; the brain demo is built into an empty folder")
    out_root.mkdir(parents=True, exist_ok=True)
    seed, volumes = brain.demo_seed, volumes_of(brain)
    jobs = [(out_root, volume, seed, grid_scale) for volume in volumes]
    if workers > 1 and len(volumes) > 1:
        with ProcessPoolExecutor(min(workers, len(volumes)), initializer=start_worker) as pool:
            records = list(pool.map(write_volume_in_worker, jobs))
    else:
        anatomies = base_anatomies()
        records = [write_volume(*job, anatomies) for job in jobs]
    hcp_grid, brats_grid = HCP_GRID.scaled(grid_scale), BRATS_GRID.scaled(grid_scale)
    manifest = {
        "statement": STATEMENT,
        "files": {
            "hcp T1w_acpc_dc_restore_brain": "the base template's T1 contrast, warped, bias field, gain, noise",
            "hcp T2w_acpc_dc_restore_brain": "T2-like contrast computed from tissue maps (CSF bright, grey matter "
            "mid, white matter dark), warped, bias field, gain, noise",
            "hcp brainmask_fs": "the warped base brain mask (not FreeSurfer's)",
            "brats t1": "the base template's T1 contrast with the lesions (core dark)",
            "brats t1ce": "the same T1 with the enhancing rim bright (no contrast agent was given)",
            "brats t2": "T2-like contrast from tissue maps with the lesions (edema and core bright)",
            "brats flair": "FLAIR-like contrast from tissue maps (CSF dark) with the lesions (edema bright)",
            "brats seg": "the synthetic lesions: 1 necrotic / non-enhancing core, 2 edema, 4 enhancing rim "
            "(HGG only); 1 or 2 randomly deformed ellipsoids per case, cores 10-35 mm (HGG) "
            "or 10-25 mm (LGG) across",
        },
        "sources": base_sources(),
        "seed": seed,
        "seeds": "numpy.random.default_rng([demo_seed, kind, index]), kind 0 healthy, 1 HGG, 2 LGG, index within "
        "the kind; base anatomy: sources[index % len(sources)]",
        "counts": {"healthy": brain.demo_healthy, "hgg": brain.demo_hgg, "lgg": brain.demo_lgg},
        "hcp": {
            **grid_record(hcp_grid),
            "dtype": "int16, brainmask_fs uint8",
            "subjects": [r for v, r in zip(volumes, records) if v.kind == HEALTHY],
        },
        "brats": {
            **grid_record(brats_grid),
            "dtype": "int16, seg uint8",
            "cases": [r for v, r in zip(volumes, records) if v.kind != HEALTHY],
        },
        "versions": {p: importlib.metadata.version(p) for p in ("nilearn", "numpy", "scipy", "nibabel")},
    }
    (out_root / "demo_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
