"""Brain MRI: slice-wise tumour detection, trained on healthy HCP subjects, tested on BraTS (ADAE Section 4.1).

The `brain` section of params is `ganad.config.brain.BrainParams` (no heavy import: nibabel and
torch stay in the modules that read and prepare volumes):

- `ganad.studies.brain.volumes`: the readers of the two on-disk layouts users already have
  (HCP `<subject>/T1w/T2w_acpc_dc_restore_brain.nii.gz`; BraTS `HGG/`, `LGG/`,
  `<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz` and later editions' names);
- `ganad.studies.brain.slices`: per volume, canonical orientation, z-score over brain voxels,
  axial slices, empty slices dropped, zero-padded to a square and resized to 32x32,
  each slice labelled from the full-resolution segmentation; streamed one volume at a
  time into the prepared arrays, with the split by subject;
- `ganad.demos.brain`: an offline demo in the exact HCP and BraTS layouts, built from
  real healthy anatomy that ships in a pip package (nilearn's MNI152 template) with
  synthetic lesions: a demo of the pipeline, not a tumour benchmark.

The prepared dataset is called `brain` and its protocol `healthy_to_tumour`
(`ganad.data.protocols`): every method of the registry trains and scores on it through
the same train_score stages as the image datasets.
"""

from __future__ import annotations

from ganad.config.brain import BRAIN_DEFAULT_METHODS, MODALITIES, PAPER_LATENT_DIM, BrainParams  # noqa: F401
from ganad.data.protocols import BRAIN_DATASET as DATASET  # noqa: F401
from ganad.data.protocols import BRAIN_PROTOCOL as PROTOCOL  # noqa: F401 (re-exported for the brain stages)
from ganad.schema import parse

CLASSES = ["normal", "tumour"]  # slice labels; class 0 (normal) is the one that trains
DEMO_MARK = "ganad demo"  # how the demo's NIfTI headers begin (descrip): prepared data made from them says so


def brain_params(section: dict | None) -> BrainParams:
    """A `brain` section of params, checked (the defaults are the offline demo's folders); the stages read
    `load_params().brain`, checked with the rest."""
    return parse(BrainParams, section, "brain")
