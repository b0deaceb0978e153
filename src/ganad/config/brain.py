"""The `brain` section of params: where the brain MRI volumes are and every preprocessing choice
(ganad.studies.brain runs them; all are recorded with the results)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ganad.schema import Float, Fraction, Int, Invalid, NonEmptyText, PositiveInt, Section, Text

BRAIN_DEFAULT_METHODS = ["adae", "dcae", "vae", "cevae"]  # the bars of ADAE Fig. 3
MODALITIES = ("t1", "t2")  # the modalities both HCP and BraTS have
PAPER_LATENT_DIM = 128  # ADAE Appendix A: latent size for HCP and BraTS


class BrainParams(Section):
    """brain: where the volumes are and every preprocessing choice (all recorded with the results)."""

    methods: list[Text] = Field(
        BRAIN_DEFAULT_METHODS, min_length=1, description="a non-empty list of method names from run.methods"
    )
    hcp_root: NonEmptyText = Field(
        "data/demo/brain/hcp", description="a folder of HCP subjects (<subject>/T1w/T2w_acpc_dc_restore_brain.nii.gz)"
    )
    brats_root: NonEmptyText = Field(
        "data/demo/brain/brats", description="a folder of BraTS cases (HGG/<case>/<case>_t2.nii.gz, ...)"
    )
    # subject folder names; a YAML number (100307) names the folder "100307"
    hcp_subjects: Literal["all"] | Annotated[list[NonEmptyText | Int], Field(min_length=1)] = Field(
        "all", description="'all' or a non-empty list of subject folder names"
    )
    modality: Literal[MODALITIES] = "t2"  # the ceVAE work's T2; the ADAE paper does not say
    label_rule: Literal["any", "dkfz"] = "any"  # any: tumour if any voxel > 0 (ADAE 4.2); dkfz: see below
    dkfz_threshold: Int = Field(10, gt=0)  # dkfz: tumour if > threshold voxels, normal if 0, else dropped
    min_brain_px: Int = Field(1, gt=0)  # a slice is kept if it has at least this many brain voxels
    slice_offset: Int = Field(0, ge=0)  # drop this many axial slices at the bottom and top (DKFZ: 20)
    clip: Float = Field(3.0, gt=0)  # z-scores clipped to +-clip and divided by it: [-1, 1] for tanh decoders
    val_fraction: Fraction = 0.2  # share of healthy subjects held out (by subject) for validation
    # what `auto` latent sizes become here; `auto` itself is the paper's
    latent_dim: Literal["auto"] | PositiveInt = PAPER_LATENT_DIM
    demo_healthy: Int = Field(10, gt=0)  # the offline demo: healthy pseudo-subjects (HCP layout)
    demo_hgg: Int = Field(4, ge=0)  # and tumour cases (BraTS 2017 layout) under HGG/ and LGG/
    demo_lgg: Int = Field(2, ge=0)
    demo_seed: Int = Field(0, ge=0)

    @field_validator("hcp_subjects")
    @classmethod
    def _folder_names(cls, subjects):
        return subjects if subjects == "all" else [str(s) for s in subjects]

    @field_validator("latent_dim")
    @classmethod
    def _paper_latent(cls, latent):
        return PAPER_LATENT_DIM if latent == "auto" else latent

    @model_validator(mode="after")
    def _a_tumour_case(self):
        if self.demo_hgg + self.demo_lgg == 0:
            raise Invalid("demo_lgg", "= 0 is invalid: with demo_hgg = 0 too the demo has no tumour case; raise one")
        return self
