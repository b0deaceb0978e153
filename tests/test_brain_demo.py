"""The offline brain demo: the exact HCP and BraTS 2017 layouts, their geometry, the synthetic lesions, the
readers taking it, and seeded reproducibility (byte-identical files)."""

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import yaml

from ganad.demos import brain as demo
from ganad.studies.brain import BrainParams
from ganad.studies.brain.volumes import brats_cases, check_case, hcp_subjects, load_segmentation, load_volume

from conftest import ROOT, invoke

COUNTS = dict(demo_healthy=2, demo_hgg=1, demo_lgg=1)
SMALL = 0.25  # grid_scale of the builds that only compare seeds: same code, a sixty-fourth of the voxels
MODALITIES = ("flair", "t1", "t1ce", "t2")
HCP_FILES = ("T1w_acpc_dc_restore_brain.nii.gz", "T2w_acpc_dc_restore_brain.nii.gz", "brainmask_fs.nii.gz")
CASES = {"Brats17_DEMO_0_1": "HGG", "Brats17_DEMO_1_1": "LGG"}  # case numbers run on across grades


def voxels(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def files_of(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One build on the real grids: its folder and manifest."""
    root = tmp_path_factory.mktemp("brain_demo") / "demo"
    return root, demo.build(root, BrainParams(**COUNTS))


def test_the_files_are_the_hcp_and_brats_2017_layouts(full):
    root, _ = full
    expected = {"demo_manifest.json"}
    expected |= {f"hcp/{subject}/T1w/{name}" for subject in ("100000", "100001") for name in HCP_FILES}
    expected |= {
        f"brats/{grade}/{case}/{case}_{m}.nii.gz" for case, grade in CASES.items() for m in (*MODALITIES, "seg")
    }
    assert set(files_of(root)) == expected


def test_hcp_geometry_is_0_7_mm_las_and_brats_1_mm_lps(full):
    root, _ = full
    for path in root.glob("hcp/*/T1w/*.nii.gz"):
        image = nib.load(path)
        assert image.shape == (260, 311, 260) and nib.aff2axcodes(image.affine) == ("L", "A", "S"), path
        assert np.allclose(image.header.get_zooms(), 0.7)
        assert np.allclose(image.affine[:3, :3], np.diag([-0.7, 0.7, 0.7]))
    for path in root.glob("brats/*/*/*.nii.gz"):
        image = nib.load(path)
        assert image.shape == (240, 240, 155) and nib.aff2axcodes(image.affine) == ("L", "P", "S"), path
        assert np.allclose(image.affine, [[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_the_background_is_exactly_zero_and_the_brain_is_not(full):
    root, _ = full
    for folder in root.glob("hcp/*/T1w"):
        mask = voxels(folder / "brainmask_fs.nii.gz")
        assert set(np.unique(mask)) == {0, 1} and mask.mean() > 0.15
        for name in HCP_FILES[:2]:
            assert np.array_equal(voxels(folder / name) != 0, mask == 1), folder / name
    for case in CASES:
        folder = next(root.glob(f"brats/*/{case}"))
        brain = voxels(folder / f"{case}_t1.nii.gz") != 0
        assert brain.mean() > 0.1 and not brain[0].any() and not brain[:, 0].any()
        for m in MODALITIES:  # one brain for every modality: BraTS readers take `image != 0` as the mask
            assert np.array_equal(voxels(folder / f"{case}_{m}.nii.gz") != 0, brain), m


def test_every_case_has_tumour_labels_1_2_4_inside_the_brain_only(full):
    root, _ = full
    for case, grade in CASES.items():
        folder = root / "brats" / grade / case
        seg = voxels(folder / f"{case}_seg.nii.gz")
        assert seg.dtype == np.uint8
        labels = set(np.unique(seg).tolist())
        assert labels <= {0, 1, 2, 4} and {1, 2} <= labels
        assert (4 in labels) == (grade == "HGG")  # LGG lesions do not enhance
        brain = voxels(folder / f"{case}_t1.nii.gz") != 0
        assert not (seg[~brain] > 0).any()
        normal = brain & (seg == 0)  # each label against the contrast's normal brain: edema bright on t2 and
        # flair, the core dark on t1, the enhancing rim bright on t1ce
        where = {label: seg == label for label in labels - {0}}
        relative = {}
        for m in ("t1", "t1ce", "t2", "flair"):
            v = voxels(folder / f"{case}_{m}.nii.gz").astype(np.float32)
            typical = np.median(v[normal])
            relative[m] = {label: float(v[w].mean() / typical) for label, w in where.items()}
        assert relative["t2"][2] > 1.2 and relative["flair"][2] > 1.2 and relative["t1"][1] < 0.7, relative
        if grade == "HGG":
            assert relative["t1ce"][4] > 1.5, relative


def test_the_readers_take_the_demo(full):
    root, _ = full
    cases = brats_cases(root / "brats")
    assert {c.name: c.grade for c in cases} == CASES
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the readers warn off the BraTS grid
        for case in cases:
            check_case(case, "t2")
    assert (load_segmentation(cases[0].files["seg"]) > 0).any()
    subjects = hcp_subjects(root / "hcp", "all", "t2")
    assert [s.name for s in subjects] == ["100000", "100001"]
    assert load_volume(subjects[0].path).shape == (260, 311, 260)


def test_the_manifest_and_the_headers_say_it_is_a_demo(full):
    root, manifest = full
    assert json.loads((root / "demo_manifest.json").read_text()) == manifest
    assert "demo of the pipeline, not a tumour benchmark" in manifest["statement"]
    assert manifest["counts"] == {"healthy": 2, "hgg": 1, "lgg": 1}
    assert manifest["sources"][0]["package"] == "nilearn"
    assert manifest["hcp"]["shape"] == [260, 311, 260] and manifest["hcp"]["axcodes"] == "LAS"
    assert manifest["brats"]["shape"] == [240, 240, 155] and manifest["brats"]["axcodes"] == "LPS"
    assert [c["case"] for c in manifest["brats"]["cases"]] == list(CASES)
    assert all(c["tumour_voxels"] for c in manifest["brats"]["cases"])
    header = nib.load(root / "brats/HGG/Brats17_DEMO_0_1/Brats17_DEMO_0_1_t2.nii.gz").header
    assert b"not a benchmark" in header["descrip"].tobytes()


def test_the_same_seed_gives_the_same_files_and_another_seed_other_volumes(tmp_path):
    def small(name, seed, workers=1):
        demo.build(tmp_path / name, BrainParams(**COUNTS, demo_seed=seed), grid_scale=SMALL, workers=workers)
        return files_of(tmp_path / name)

    first = small("a", 0)
    assert small("b", 0) == first  # byte for byte, gzip headers included
    assert small("parallel", 0, workers=2) == first  # processes write the same files
    other = small("c", 1)
    assert other.keys() == first.keys()
    for name in (
        "hcp/100000/T1w/T2w_acpc_dc_restore_brain.nii.gz",
        "brats/HGG/Brats17_DEMO_0_1/Brats17_DEMO_0_1_seg.nii.gz",
    ):
        assert not np.array_equal(voxels(tmp_path / "a" / name), voxels(tmp_path / "c" / name)), name


def test_more_subjects_leave_the_others_as_they_were(tmp_path):
    demo.build(tmp_path / "few", BrainParams(demo_healthy=1, demo_hgg=1, demo_lgg=0), grid_scale=SMALL)
    demo.build(tmp_path / "more", BrainParams(demo_healthy=2, demo_hgg=2, demo_lgg=0), grid_scale=SMALL)
    for name in files_of(tmp_path / "few"):
        if name.endswith(".nii.gz"):
            assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "more" / name).read_bytes(), name


def test_colin27_is_the_second_subject_where_mricron_data_is_installed(tmp_path, monkeypatch):
    """A stand-in for /usr/share/mricron/templates/ch2bet.nii.gz: part of the MNI T1 on Colin27's grid
    (181x217x181, 1 mm, RAS, uint8); its tissue fractions come from its intensities."""
    mni = nib.load(demo.nilearn_data() / demo.MNI152_FILES["t1"])
    ch2bet = tmp_path / "ch2bet.nii.gz"
    affine = np.array([[1.0, 0, 0, -90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.asarray(mni.dataobj)[8:189, 8:225, :181].astype(np.uint8), affine), ch2bet)
    monkeypatch.setattr(demo, "COLIN27_FILE", ch2bet)
    manifest = demo.build(tmp_path / "demo", BrainParams(demo_healthy=2, demo_hgg=0, demo_lgg=1), grid_scale=SMALL)
    assert [s["package"] for s in manifest["sources"]] == ["nilearn", "mricron-data (Debian)"]
    assert [s["base"] for s in manifest["hcp"]["subjects"]] == ["MNI152 2009a", "Colin27"]
    t2 = voxels(tmp_path / "demo/hcp/100001/T1w/T2w_acpc_dc_restore_brain.nii.gz")
    assert (t2 > 0).mean() > 0.1


def test_an_occupied_folder_is_refused(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        demo.build(tmp_path, BrainParams(**COUNTS))


def test_the_stage_replaces_the_demo_folder_and_says_it_is_a_demo(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["brain"].update(demo_healthy=1, demo_hgg=1, demo_lgg=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stale = tmp_path / "data/demo/brain/hcp/999999"
    stale.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for grid in ("HCP_GRID", "BRATS_GRID"):
        monkeypatch.setattr(demo, grid, getattr(demo, grid).scaled(SMALL))
    output = invoke("brain_demo")
    assert "demo of the pipeline, not a tumour benchmark" in output
    assert "healthy 1 (HCP layout), HGG 1 and LGG 0" in output
    assert sorted(p.name for p in (tmp_path / "data/demo").iterdir()) == ["brain"]  # no .tmp left
    assert not stale.exists() and (tmp_path / "data/demo/brain/demo_manifest.json").is_file()
    assert (tmp_path / "data/demo/brain/hcp/100000/T1w/T2w_acpc_dc_restore_brain.nii.gz").is_file()
