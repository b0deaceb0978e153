"""Brain MRI: slice-wise tumour detection, trained on healthy HCP subjects, tested on BraTS (ADAE Section 4.1).

The `brain` section of params, checked here with no heavy import (nibabel and torch
stay in the modules that read and prepare volumes):

- `ganad.brain.volumes`: the readers of the two on-disk layouts users already have
  (HCP `<subject>/T1w/T2w_acpc_dc_restore_brain.nii.gz`; BraTS `HGG/`, `LGG/`,
  `<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz` and later editions' names);
- `ganad.brain.slices`: per volume, canonical orientation, z-score over brain voxels,
  axial slices, empty slices dropped, zero-padded to a square and resized to 32x32,
  each slice labelled from the full-resolution segmentation; streamed one volume at a
  time into the prepared arrays, with the split by subject;
- `ganad.brain.demo`: an offline demo in the exact HCP and BraTS layouts, built from
  real healthy anatomy that ships in a pip package (nilearn's MNI152 template) with
  synthetic lesions: a demo of the pipeline, not a tumour benchmark.

The prepared dataset is called `brain` and its protocol `healthy_to_tumour`
(`ganad.protocols`): every method of the registry trains and scores on it through
the same train and score stages as the image datasets.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import (ParamsError, build_config, fraction, is_int, non_negative_int, one_of, positive,
                      positive_int, rule)
from ..config import BRAIN_DEFAULT_METHODS  # the bars of ADAE Fig. 3
from ..protocols import BRAIN_DATASET as DATASET, BRAIN_PROTOCOL as PROTOCOL  # noqa: F401
CLASSES = ["normal", "tumour"]  # slice labels; class 0 (normal) is the one that trains
MODALITIES = ("t1", "t2")  # the modalities both HCP and BraTS have
PAPER_LATENT_DIM = 128  # ADAE Appendix A: latent size for HCP and BraTS
DEMO_MARK = "ganad demo"  # how the demo's NIfTI headers begin (descrip): prepared data made from them says so


def _subjects_ok(value) -> bool:
    return value == "all" or (isinstance(value, list) and bool(value) and all(
        isinstance(s, (str, int)) and not isinstance(s, bool) and str(s) for s in value))


@dataclass
class BrainParams:
    """brain: where the volumes are and every preprocessing choice (all recorded with the results)."""

    methods: list = rule(BRAIN_DEFAULT_METHODS, lambda v: isinstance(v, list) and bool(v) and all(
        isinstance(m, str) for m in v), "a non-empty list of method names from run.methods", factory=True)
    hcp_root: str = rule("data/demo/brain/hcp", lambda v: isinstance(v, str) and bool(v),
                         "a folder of HCP subjects (<subject>/T1w/T2w_acpc_dc_restore_brain.nii.gz)")
    brats_root: str = rule("data/demo/brain/brats", lambda v: isinstance(v, str) and bool(v),
                           "a folder of BraTS cases (HGG/<case>/<case>_t2.nii.gz, ...)")
    hcp_subjects: list | str = rule("all", _subjects_ok, "'all' or a non-empty list of subject folder names")
    modality: str = one_of("t2", MODALITIES)  # the ceVAE work's T2; the ADAE paper does not say
    label_rule: str = one_of("any", ("any", "dkfz"))  # any: tumour if any voxel > 0 (ADAE 4.2); dkfz: see below
    dkfz_threshold: int = positive_int(10)  # dkfz: tumour if > threshold voxels, normal if 0, else dropped
    min_brain_px: int = positive_int(1)  # a slice is kept if it has at least this many brain voxels
    slice_offset: int = non_negative_int(0)  # drop this many axial slices at the bottom and top (DKFZ: 20)
    clip: float = positive(3.0)  # z-scores clipped to +-clip and divided by it: [-1, 1] for tanh decoders
    val_fraction: float = fraction(0.2)  # share of healthy subjects held out (by subject) for validation
    latent_dim: int | str = rule(PAPER_LATENT_DIM, lambda v: v == "auto" or (is_int(v) and v > 0),
                                 "'auto' or a positive integer")  # what `auto` latent sizes become here
    demo_healthy: int = positive_int(10)  # the offline demo: healthy pseudo-subjects (HCP layout)
    demo_hgg: int = non_negative_int(4)  # and tumour cases (BraTS 2017 layout) under HGG/ and LGG/
    demo_lgg: int = non_negative_int(2)
    demo_seed: int = non_negative_int(0)


def brain_params(section: dict | None) -> BrainParams:
    """The `brain` section of params, checked (the defaults are the offline demo's folders)."""
    brain = build_config(BrainParams, section, "brain")
    if brain.latent_dim == "auto":
        brain.latent_dim = PAPER_LATENT_DIM
    if brain.demo_hgg + brain.demo_lgg == 0:
        raise ParamsError("brain.demo_hgg + brain.demo_lgg = 0 is invalid: the demo needs at least one tumour case")
    if brain.hcp_subjects != "all":
        brain.hcp_subjects = [str(s) for s in brain.hcp_subjects]
    return brain
