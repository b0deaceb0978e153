"""The brain study's report: pooled and per-grade AUROC, a patient bootstrap interval, Fig. 3."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ganad.errors import DataError
from ganad.studies.brain.report import PAPER_AUROC, fig3, method_metrics, patient_interval, slice_scores, write_results


def score_table(seed=0, patients=8, slices=40, shift=1.0):
    """Test slices of `patients` cases (half HGG, half LGG), each with tumour and normal slices."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(patients):
        for z in range(slices):
            tumour = int(slices // 3 <= z < 2 * slices // 3)
            rows.append(
                {
                    "class": 0,
                    "index": p * slices + z,
                    "label": tumour,
                    "anomalous": tumour,
                    "score": rng.normal() + shift * tumour,
                }
            )
    scores = pd.DataFrame(rows)
    grades = ["HGG" if p % 2 == 0 else "LGG" for p in range(patients) for _ in range(slices)]
    subjects = [f"case{p}" for p in range(patients) for _ in range(slices)]
    slice_rows = pd.DataFrame({"index": np.arange(patients * slices), "subject": subjects, "grade": grades})
    return slice_scores(scores, slice_rows)


def test_pooled_and_per_grade_auroc_are_scikit_learns_on_the_right_slices():
    table = score_table()
    m = method_metrics(table, n_resamples=200)
    assert m["auroc"] == pytest.approx(roc_auc_score(table["anomalous"], table["score"]), abs=1e-4)
    hgg = table[table["grade"] == "HGG"]
    assert m["auroc_HGG"] == pytest.approx(roc_auc_score(hgg["anomalous"], hgg["score"]), abs=1e-4)
    assert "auroc_LGG" in m


def test_per_grade_operating_points_count_flagged_slices_of_each_kind():
    table = score_table()
    table["p_value"] = np.where(table["score"] > 1.0, 0.01, 0.5)  # flagged at 0.05 exactly above score 1
    m = method_metrics(table, n_resamples=50, alpha=0.05)
    hit = table["score"] > 1.0
    assert m["far_at_alpha"] == pytest.approx(hit[table["anomalous"] == 0].mean(), abs=1e-4)
    assert m["detection_at_alpha"] == pytest.approx(hit[table["anomalous"] == 1].mean(), abs=1e-4)
    lgg = (table["grade"] == "LGG") & (table["anomalous"] == 1)
    assert m["detection_at_alpha_LGG"] == pytest.approx(hit[lgg].mean(), abs=1e-4)
    assert "far_at_alpha" not in method_metrics(table.drop(columns="p_value"), n_resamples=50)


def test_the_patient_interval_holds_the_estimate_narrows_with_more_patients_and_repeats():
    few, many = score_table(patients=6), score_table(patients=60)
    low_few, high_few = patient_interval(few, 300, seed=1)
    low_many, high_many = patient_interval(many, 300, seed=1)
    assert low_few <= roc_auc_score(few["anomalous"], few["score"]) <= high_few
    assert high_many - low_many < high_few - low_few
    assert patient_interval(few, 300, seed=1) == (low_few, high_few)
    one_resample_is_everyone = patient_interval(few.assign(subject="one"), 300)  # one patient: no interval
    assert np.isnan(one_resample_is_everyone).all()


def test_scores_of_slices_the_prepared_data_lacks_are_refused():
    scores = pd.DataFrame({"class": [0], "index": [99], "label": [0], "anomalous": [0], "score": [0.1]})
    slices = pd.DataFrame({"index": [0], "subject": ["a"], "grade": ["HGG"]})
    with pytest.raises(ValueError, match="brain_prepare"):
        slice_scores(scores, slices)


def test_results_say_demo_and_mark_the_papers_missing_bars(tmp_path):
    table = score_table()
    metrics = {m: method_metrics(table, n_resamples=100) for m in ("adae", "dcae", "vae")}
    metrics["cevae"] = {"unavailable": "not installed"}
    counts = {
        "hcp_subjects": 4,
        "slices": {"hcp": 400, "brats": 320},
        "split": {"train": 300, "val": 100},
        "brats_cases": {"HGG": 4, "LGG": 4},
        "tumour_slices": 107,
    }
    prepared = {"preprocessing": {"demo": True, "counts": counts, "modality": "t2", "label_rule": "any", "clip": 3.0}}
    paths = write_results(metrics, prepared, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "not a tumour benchmark" in text and f"{PAPER_AUROC['adae']:.3f}" in text and "not run" in text
    assert "4 healthy subjects (400 slices; 300 train, 100 validation" in text and "4 HGG, 4 LGG" in text
    assert json.loads((tmp_path / "metrics.json").read_text())["adae"]["auroc"] == metrics["adae"]["auroc"]
    assert all(p.is_file() for p in paths) and (tmp_path / "fig3_auroc.png").stat().st_size > 1000
    # a run whose brain.methods holds none of Fig. 3's methods draws the ones it ran; one with no scores at all
    # stops with one message
    others = {"egbad": metrics["adae"], "igmm_gan": {"unavailable": "not installed"}}
    assert fig3(others, tmp_path / "others.png").stat().st_size > 1000
    with pytest.raises(DataError, match="no method of brain.methods gave brain scores"):
        fig3({"igmm_gan": {"unavailable": "not installed"}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_the_slice_size_reference_scores_test_slices_by_their_brain_voxels():
    from ganad.studies.brain.report import slice_size_scores

    slices = pd.DataFrame(
        {
            "index": range(6),
            "source": ["hcp", "hcp", "brats", "brats", "brats", "brats"],
            "subject": ["h", "h", "a", "a", "b", "b"],
            "grade": ["healthy"] * 2 + ["HGG"] * 4,
            "brain_px": [900, 50, 100, 800, 300, 700],
            "label": [0, 0, 0, 1, 0, 1],
        }
    )
    table = slice_scores(slice_size_scores(slices), slices)
    assert table["index"].tolist() == [2, 3, 4, 5]  # the BraTS (test) slices only
    assert method_metrics(table, n_resamples=100)["auroc"] == 1.0  # the larger slices hold the tumours here
