"""The brain-MRI readers and slice preparation, on small volumes written here in the real layouts."""

import csv
import json
import warnings

import numpy as np
import pytest
import yaml

from ganad.data.protocols import load_split
from ganad.errors import DataError
from ganad.studies.brain import brain_params
from ganad.studies.brain.slices import normalise, prepare, subject_split, volume_slices, zscore_brain
from ganad.studies.brain.volumes import (
    brats_cases,
    check_case,
    geometry,
    hcp_subjects,
    load_segmentation,
    load_volume,
    require_files,
)

from conftest import BRATS_2017, BRATS_2023, LPS, ROOT, SHAPE, brats_case, hcp_subject, head, invoke, lesion, save

# small volumes are off the BraTS grid (240x240x155) on purpose: that warning is tested once, ignored elsewhere
pytestmark = pytest.mark.filterwarnings("ignore:.*BraTS volumes are:UserWarning")


@pytest.fixture
def roots(tmp_path):
    """Three healthy HCP subjects and a BraTS 2017 root of two HGG and one LGG cases."""
    for i, name in enumerate(("100307", "100408", "101107")):
        hcp_subject(tmp_path / "hcp", name, seed=i)
    for i, (grade, name) in enumerate(
        (("HGG", "Brats17_2013_10_1"), ("HGG", "Brats17_TCIA_469_1"), ("LGG", "Brats17_2013_0_1"))
    ):
        brats_case(tmp_path / "brats" / grade / name, seed=10 + i)
    return tmp_path


def params(tmp_path, **changes):
    return brain_params({"hcp_root": str(tmp_path / "hcp"), "brats_root": str(tmp_path / "brats"), **changes})


# --- readers ---


def test_brats_2017_layout_every_file_and_grade(roots):
    (roots / "brats" / "survival_data.csv").write_text("Brats17ID,Age\n")
    brats_case(roots / "brats" / "__MACOSX" / "HGG" / "Brats17_2013_10_1")  # a zip's AppleDouble copy
    cases = brats_cases(roots / "brats")
    assert [(c.name, c.grade) for c in cases] == [
        ("Brats17_2013_0_1", "LGG"),
        ("Brats17_2013_10_1", "HGG"),
        ("Brats17_TCIA_469_1", "HGG"),
    ]
    case = cases[1]
    assert set(case.files) == set(BRATS_2017)
    assert case.files["t1ce"].name == "Brats17_2013_10_1_t1ce.nii.gz"
    assert require_files(case, "t2") == (case.files["t2"], case.files["seg"])


def test_brats_2023_names_map_to_the_same_keys(tmp_path):
    brats_case(tmp_path / "BraTS-GLI-00000-000", keys=BRATS_2023, sep="-")
    brats_case(tmp_path / "BraTS-GLI-00002-000", keys=BRATS_2023, sep="-", seed=1)
    cases = brats_cases(tmp_path)
    assert [(c.name, c.grade) for c in cases] == [
        ("BraTS-GLI-00000-000", "unknown"),
        ("BraTS-GLI-00002-000", "unknown"),
    ]
    assert {k: p.name for k, p in cases[0].files.items()} == {
        "t1": "BraTS-GLI-00000-000-t1n.nii.gz",
        "t1ce": "BraTS-GLI-00000-000-t1c.nii.gz",
        "t2": "BraTS-GLI-00000-000-t2w.nii.gz",
        "flair": "BraTS-GLI-00000-000-t2f.nii.gz",
        "seg": "BraTS-GLI-00000-000-seg.nii.gz",
    }


def test_uncompressed_nii_and_the_misnamed_2020_segmentation(tmp_path):
    brats_case(tmp_path / "BraTS20_Training_001", ext=".nii")
    odd = brats_case(tmp_path / "BraTS20_Training_355", keys=BRATS_2017[:-1], ext=".nii")
    save(odd / "W39_1998.09.19_Segm.nii", lesion())
    cases = brats_cases(tmp_path)
    assert [c.name for c in cases] == ["BraTS20_Training_001", "BraTS20_Training_355"]
    assert cases[0].files["t2"].name == "BraTS20_Training_001_t2.nii"
    assert cases[1].files["seg"].name == "W39_1998.09.19_Segm.nii"
    np.testing.assert_array_equal(load_segmentation(cases[1].files["seg"]), lesion())


def test_hcp_layout_all_or_listed_subjects(roots):
    (roots / "hcp" / "README.txt").write_text("not a subject")
    subjects = hcp_subjects(roots / "hcp", "all", "t2")
    assert [s.name for s in subjects] == ["100307", "100408", "101107"]
    assert subjects[0].path == roots / "hcp" / "100307" / "T1w" / "T2w_acpc_dc_restore_brain.nii.gz"
    listed = hcp_subjects(roots / "hcp", ["101107", "100307"], "t1")
    assert [(s.name, s.path.name) for s in listed] == [
        ("100307", "T1w_acpc_dc_restore_brain.nii.gz"),
        ("101107", "T1w_acpc_dc_restore_brain.nii.gz"),
    ]


def test_off_grid_brats_volume_warns(roots):
    case = brats_cases(roots / "brats")[0]
    with pytest.warns(UserWarning, match=r"shape \(24, 20, 16\).*BraTS volumes are \(240, 240, 155\)"):
        check_case(case, "t2")


# --- orientation, intensities, labels ---


def test_lps_and_ras_files_of_one_head_give_identical_slices(tmp_path):
    ras = brats_case(tmp_path / "ras" / "case", affine=np.eye(4))
    lps = brats_case(tmp_path / "lps" / "case", affine=LPS)
    np.testing.assert_array_equal(load_volume(lps / "case_t2.nii.gz"), head(0))
    np.testing.assert_array_equal(load_volume(ras / "case_t2.nii.gz"), head(0))
    brain = params(tmp_path)
    a = volume_slices(load_volume(ras / "case_t2.nii.gz"), load_segmentation(ras / "case_seg.nii.gz"), brain)
    b = volume_slices(load_volume(lps / "case_t2.nii.gz"), load_segmentation(lps / "case_seg.nii.gz"), brain)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert geometry(lps / "case_t2.nii.gz") == (SHAPE, (1.0, 1.0, 1.0))


def test_slices_are_turned_anterior_up_and_right_on_the_right():
    volume = np.zeros((40, 40, 3), dtype=np.float32)
    volume[30:38, 30:38, :] = 1.0  # RAS: high x is the subject's right, high y anterior
    volume[2:38, 2:10, :] = 2.0  # a bar at the back
    image = volume_slices(volume, None, params_defaults()).images[1]
    assert np.abs(image[2:7, 25:29]).min() > 0  # right-anterior block: top right
    assert np.abs(image[:20, :20]).max() == 0
    assert np.abs(image[25:29, 4:28]).min() > 0  # the bar: at the bottom


def params_defaults(**changes):
    return brain_params({"hcp_root": "unused", "brats_root": "unused", **changes})


def test_zscore_over_brain_voxels_only():
    volume = head(3)
    brain = volume > 0
    z = zscore_brain(volume)
    assert (z[~brain] == 0).all()
    assert abs(z[brain].mean()) < 1e-4 and abs(z[brain].std() - 1) < 1e-4
    scaled = normalise(volume, clip=1.5)
    assert scaled.min() >= -1 and scaled.max() <= 1 and (scaled[~brain] == 0).all()
    np.testing.assert_allclose(scaled[brain], np.clip(z[brain], -1.5, 1.5) / 1.5, atol=1e-6)


def test_slice_labels_follow_the_segmentation_for_both_rules():
    volume = np.full((30, 30, 10), 5.0, dtype=np.float32)
    seg = np.zeros(volume.shape, dtype=np.int16)
    seg[0:5, 0:1, 2] = 1  # 5 voxels: tumour for `any`, dropped by `dkfz` (1..10)
    seg[0:10, 0:1, 4] = 2  # 10 voxels: the same
    seg[0:11, 0:1, 6] = 4  # 11 voxels: tumour for both
    seg[0:20, 0:5, 7] = 1
    any_rule = volume_slices(volume, seg, params_defaults(label_rule="any"))
    np.testing.assert_array_equal(any_rule.z, np.arange(10))
    np.testing.assert_array_equal(any_rule.labels, [0, 0, 1, 0, 1, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(any_rule.tumour_px, [0, 0, 5, 0, 10, 0, 11, 100, 0, 0])
    dkfz = volume_slices(volume, seg, params_defaults(label_rule="dkfz", dkfz_threshold=10))
    np.testing.assert_array_equal(dkfz.z, [0, 1, 3, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(dkfz.labels, [0, 0, 0, 0, 1, 1, 0, 0])
    assert dkfz.dropped == {"slice_offset": 0, "min_brain_px": 0, "dkfz_threshold": 2}


def test_empty_and_edge_slices_are_dropped_and_counted():
    volume = np.zeros((30, 30, 12), dtype=np.float32)
    volume[5:25, 5:25, 3:10] = np.random.default_rng(0).uniform(1, 9, (20, 20, 7))  # 400 brain voxels a slice
    volume[7:25, 5:25, 9] = 0.0
    volume[5:7, 7:25, 9] = 0.0  # slice 9: only 4 brain voxels left
    got = volume_slices(volume, None, params_defaults(min_brain_px=10, slice_offset=2))
    np.testing.assert_array_equal(got.z, [3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(got.brain_px, [400] * 6)
    assert got.dropped == {"slice_offset": 4, "min_brain_px": 2, "dkfz_threshold": 0}
    assert got.images.shape == (6, 32, 32) and got.images.min() >= -1 and got.images.max() <= 1


# --- the split ---


def test_subject_split_is_disjoint_reproducible_and_by_subject():
    subjects = [str(100000 + i) for i in range(10)]
    train, val = subject_split(subjects, 0.2, seed=7)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == subjects
    assert subject_split(list(reversed(subjects)), 0.2, seed=7) == (train, val)
    assert any(subject_split(subjects, 0.2, seed=s)[1] != val for s in range(8, 12))
    assert subject_split(["a", "b"], 0.1, 0) in ((["a"], ["b"]), (["b"], ["a"]))
    assert subject_split(["a"], 0.5, 0) == (["a"], [])
    assert subject_split(["a", "b", "c"], 0.0, 0) == (["a", "b", "c"], [])
    assert len(subject_split(["a", "b", "c"], 0.9, 0)[0]) == 1


# --- prepare, end to end ---


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_prepare_writes_healthy_then_tumour_slices_and_a_subject_split(roots):
    out, split, report = roots / "prepared" / "brain", roots / "splits" / "healthy_to_tumour.npz", roots / "report"
    counts = prepare(params(roots, val_fraction=0.34), 5, out, split, report)
    images = np.load(out / "images.npy")
    labels = np.load(out / "labels.npy")
    rows = read_rows(out / "slices.csv")
    meta = json.loads((out / "meta.json").read_text())
    assert images.dtype == np.float16 and images.shape == (len(rows), 1, 32, 32)
    assert images.min() >= -1 and images.max() <= 1 and images.max() > 0.5
    assert labels.dtype == np.int64 and labels.tolist() == [int(r["label"]) for r in rows]
    sources = [r["source"] for r in rows]
    n_train = sources.count("hcp")
    assert sources == ["hcp"] * n_train + ["brats"] * (len(rows) - n_train)
    assert (meta["n_train"], meta["n_test"]) == (n_train, len(rows) - n_train)
    assert meta["channels"] == 1 and meta["size"] == 32 and meta["classes"] == ["normal", "tumour"]
    assert meta["latent_dim"] == 128
    pre = meta["preprocessing"]
    assert pre["modality"] == "t2" and pre["label_rule"] == "any" and "demo_hgg" not in pre
    assert pre["counts"] == counts
    assert counts["hcp_subjects"] == 3 and counts["brats_cases"] == {"HGG": 2, "LGG": 1, "unknown": 0}
    assert counts["slices"] == {"hcp": n_train, "brats": len(rows) - n_train}
    assert counts["tumour_slices"] == int(labels.sum()) == sum(int(r["tumour_px"]) > 0 for r in rows) == 3 * 3
    assert {r["grade"] for r in rows if r["source"] == "hcp"} == {"healthy"}
    assert [int(r["z"]) for r in rows if r["subject"] == "Brats17_2013_10_1" and r["label"] == "1"] == [6, 7, 8]
    assert all(int(r["tumour_px"]) == 0 and r["label"] == "0" for r in rows[:n_train])

    parts = load_split(split, 0)
    subject_of = np.array([r["subject"] for r in rows])
    np.testing.assert_array_equal(parts["test"], np.arange(n_train, len(rows)))
    assert sorted(np.concatenate([parts["train"], parts["val"]]).tolist()) == list(range(n_train))
    assert len(set(subject_of[parts["val"]])) == 1  # round(0.34 * 3) = 1 subject held out
    assert not set(subject_of[parts["train"]]) & set(subject_of[parts["val"]])
    assert all(p.dtype == np.int64 for p in parts.values())
    assert counts["split"] == {part: len(idx) for part, idx in parts.items()}

    done = json.loads((report / "prepare.json").read_text())
    assert done["val_subjects"] == sorted(set(subject_of[parts["val"]]))
    assert (report / "orientation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (roots / "prepared" / "brain.tmp").exists()

    again = prepare(params(roots, val_fraction=0.34), 5, out, split, report)  # reproducible, byte for byte
    assert again == counts and np.array_equal(np.load(out / "images.npy"), images)
    np.testing.assert_array_equal(load_split(split, 0)["val"], parts["val"])


def test_prepare_with_the_dkfz_rule_drops_ambiguous_slices(roots):
    small = lesion(z=(6, 8))
    small[:, :, 7] = 0
    small[9, 8:11, 7] = 1  # 3 voxels on slice 7: ambiguous
    brats_case(roots / "brats" / "LGG" / "Brats17_2013_0_1", seed=12, seg=small)
    counts = prepare(params(roots, label_rule="dkfz"), 0, roots / "out", roots / "split.npz", roots / "report")
    rows = read_rows(roots / "out" / "slices.csv")
    assert counts["dropped"]["brats"]["dkfz_threshold"] == 1
    assert [int(r["z"]) for r in rows if r["subject"] == "Brats17_2013_0_1" and int(r["tumour_px"])] == [6]
    assert all(int(r["tumour_px"]) == 0 or int(r["tumour_px"]) > 10 for r in rows)


def test_a_failure_midway_leaves_the_previous_outputs_alone(roots):
    out, split, report = roots / "out", roots / "split.npz", roots / "report"
    prepare(params(roots), 0, out, split, report)
    before = (out / "images.npy").read_bytes()
    bad = lesion()
    bad[0, 0, 0] = 7
    brats_case(roots / "brats" / "LGG" / "Brats17_2013_0_1", seed=12, seg=bad)  # the last case read
    with pytest.raises(DataError, match=r"Brats17_2013_0_1_seg\.nii\.gz' holds labels \[7\]"):
        prepare(params(roots), 0, out, split, report)
    assert (out / "images.npy").read_bytes() == before
    assert not (roots / "out.tmp").exists()


def test_the_stage_writes_the_prepared_dataset_split_and_report(roots, monkeypatch):
    """With params' default roots (the demo's folders, relative to the repository root)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (roots / "params.yaml").write_text(yaml.safe_dump(params))
    demo = roots / params["brain"]["hcp_root"]
    demo.parent.mkdir(parents=True)
    (roots / "hcp").rename(demo)
    (roots / "brats").rename(roots / params["brain"]["brats_root"])
    monkeypatch.chdir(roots)
    output = invoke("brain_prepare")
    assert "3 HCP subjects (t2), 3 BraTS cases (HGG 2, LGG 1)" in output and "9 tumour" in output
    for path in (
        "data/prepared/brain/images.npy",
        "data/prepared/brain/labels.npy",
        "data/prepared/brain/slices.csv",
        "data/prepared/brain/meta.json",
        "data/splits/brain/healthy_to_tumour.npz",
        "reports/brain/prepare.json",
        "reports/brain/orientation.png",
    ):
        assert (roots / path).is_file(), path


# --- bad input: each stops with the file and the fix named ---


def test_case_missing_a_modality_or_the_segmentation(roots):
    folder = roots / "brats" / "HGG" / "Brats17_TCIA_469_1"
    (folder / "Brats17_TCIA_469_1_t2.nii.gz").unlink()
    with pytest.raises(
        DataError,
        match=r"Brats17_TCIA_469_1' has no t2 file: "
        r"expected 'Brats17_TCIA_469_1_t2\.nii\.gz'",
    ):
        prepare(params(roots), 0, roots / "out", roots / "split.npz", roots / "report")
    assert not (roots / "out").exists()
    (folder / "Brats17_TCIA_469_1_seg.nii.gz").unlink()
    with pytest.raises(DataError, match=r"has no seg file: expected 'Brats17_TCIA_469_1_seg\.nii\.gz'"):
        require_files(brats_cases(roots / "brats")[2], "flair")


def test_segmentation_with_unexpected_labels(tmp_path):
    seg = lesion()
    seg[3, 3, 3] = 7
    path = save(tmp_path / "case_seg.nii.gz", seg)
    with pytest.raises(DataError, match=r"case_seg\.nii\.gz' holds labels \[7\]; BraTS segmentations hold only"):
        load_segmentation(path)
    ok = lesion()
    ok[ok == 4] = 3  # BraTS 2023: enhancing tumour is 3
    np.testing.assert_array_equal(load_segmentation(save(tmp_path / "gli_seg.nii.gz", ok)), ok)


def test_volumes_of_the_wrong_shape(tmp_path):
    flat = save(tmp_path / "case" / "case_t2.nii.gz", np.ones((24, 20), dtype=np.float32))
    with pytest.raises(DataError, match=r"case_t2\.nii\.gz' holds an array of shape \(24, 20\), expected a 3-D"):
        geometry(flat)
    with pytest.raises(DataError, match="expected a 3-D volume"):
        load_volume(flat)
    brats_case(tmp_path / "mismatch", keys=("t2",))
    save(tmp_path / "mismatch" / "mismatch_seg.nii.gz", np.zeros((24, 20, 15), dtype=np.int16))
    with pytest.raises(
        DataError,
        match=r"mismatch_t2\.nii\.gz' has shape \(24, 20, 16\) but .*mismatch_seg\.nii\.gz' "
        r"has \(24, 20, 15\)",
    ):
        check_case(brats_cases(tmp_path / "mismatch")[0], "t2")


def test_a_file_that_is_not_nifti(roots):
    bad = roots / "brats" / "HGG" / "Brats17_2013_10_1" / "Brats17_2013_10_1_t2.nii.gz"
    bad.write_bytes(b"not a volume at all " * 50)
    with pytest.raises(DataError, match=r"Brats17_2013_10_1_t2\.nii\.gz' is not a readable NIfTI file"):
        prepare(params(roots), 0, roots / "out", roots / "split.npz", roots / "report")
    with pytest.raises(DataError, match="is not a readable NIfTI file"):
        load_volume(bad)


def test_roots_that_are_missing_or_hold_nothing(tmp_path):
    with pytest.raises(DataError, match=r"BraTS root '.*nowhere' does not exist"):
        brats_cases(tmp_path / "nowhere")
    (tmp_path / "empty" / "HGG").mkdir(parents=True)
    (tmp_path / "empty" / "survival_data.csv").write_text("")
    with pytest.raises(DataError, match=r"BraTS root '.*empty' holds no case folders"):
        brats_cases(tmp_path / "empty")
    with pytest.raises(DataError, match=r"HCP root '.*empty' holds no subject folders"):
        hcp_subjects(tmp_path / "empty", "all", "t2")
    with pytest.raises(DataError, match=r"HCP root '.*nowhere' does not exist"):
        hcp_subjects(tmp_path / "nowhere", "all", "t2")


def test_hcp_subject_missing_its_file(roots):
    hcp_subject(roots / "hcp", "102008", modalities=("T1w",))
    expected = roots / "hcp" / "102008" / "T1w" / "T2w_acpc_dc_restore_brain.nii.gz"
    with pytest.raises(DataError, match=f"HCP subject '102008' has no t2 volume: expected '{expected}'"):
        hcp_subjects(roots / "hcp", "all", "t2")
    with pytest.raises(DataError, match="'999999' has no t1 volume"):
        hcp_subjects(roots / "hcp", ["100307", "999999"], "t1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # HCP volumes are not held to the BraTS grid
        assert len(hcp_subjects(roots / "hcp", ["102008"], "t1")) == 1
