"""The floors: scorers that learn nothing, on hand-built images and splits, and the marking of methods whose
interval does not clear them."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ganad.data.protocols import save_splits
from ganad.evaluation.floors import (
    FLOORS,
    Z,
    floor_aurocs,
    floor_scores,
    floor_tables,
    floor_verdicts,
    mean_interval,
)
from ganad.evaluation.metrics import class_metrics


def test_floor_scores_on_hand_built_images():
    train = np.zeros((4, 1, 2, 2))
    train[:2] = 0.5  # mean image 0.25 everywhere, mean intensity 0.25
    test = np.stack([np.full((1, 2, 2), v) for v in (0.25, 0.75, -0.25)])
    scores = floor_scores(train, test)
    # L2 over 4 pixels of a constant difference d: 2|d|
    np.testing.assert_allclose(scores["floor_mean_image"], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(scores["floor_intensity"], [0.0, 0.5, 0.5])  # both directions count
    checker = np.zeros((1, 1, 2, 2))
    checker[0, 0] = [[1.0, -0.5], [-0.5, 0.0]]  # intensity 0: far from the mean image, not in intensity
    scores = floor_scores(np.zeros((3, 1, 2, 2)), checker)
    assert scores["floor_intensity"][0] == 0 and scores["floor_mean_image"][0] == pytest.approx(np.sqrt(1.5))


def test_floor_aurocs_rank_a_split_s_test_images_by_each_floor():
    train = np.zeros((4, 1, 2, 2))  # normals: mean image 0, mean intensity 0
    test = np.stack([np.full((1, 2, 2), v) for v in (0.1, -0.2, 0.6, 0.3)])
    checker = np.zeros((1, 2, 2))
    checker[0] = [[1.0, -1.0], [-1.0, 1.0]]  # far from the mean image, but at the normals' intensity
    test = np.concatenate([test, checker[None]])
    anomalous = np.array([0, 0, 1, 1, 1])
    aurocs = floor_aurocs(train, test, anomalous)
    assert aurocs["floor_mean_image"] == 1.0  # distances 0.2, 0.4 below 0.6, 1.2, 2.0
    # intensity distances 0.1, 0.2 (normal) against 0.6, 0.3, 0.0: 4 of 6 pairs ranked right
    assert aurocs["floor_intensity"] == pytest.approx(4 / 6)


def test_floor_tables_score_every_class_of_a_split_from_its_training_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepared = tmp_path / "data" / "prepared" / "toy"
    prepared.mkdir(parents=True)
    # class 0: dark images; class 1: bright ones; leave-one-class-out, class c anomalous
    images = np.concatenate([np.full((6, 1, 4, 4), 20, np.uint8), np.full((6, 1, 4, 4), 230, np.uint8)])
    labels = np.array([0] * 6 + [1] * 6)
    np.save(prepared / "images.npy", images)
    np.save(prepared / "labels.npy", labels)
    (tmp_path / "data" / "splits" / "toy").mkdir(parents=True)
    splits = {
        0: {"train": np.arange(6, 10), "val": np.array([10]), "test": np.array([0, 1, 11])},
        1: {"train": np.arange(0, 4), "val": np.array([4]), "test": np.array([5, 6, 7])},
    }
    save_splits(tmp_path / "data" / "splits" / "toy" / "leave_one_class_out.npz", splits)
    tables = floor_tables("toy", "leave_one_class_out", seed=3)
    assert set(tables) == set(FLOORS)
    for table in tables.values():
        assert list(table.columns) == ["class", "seed", "index", "label", "anomalous", "score", "p_value"]
        # one validation image per class: p is 1/2 above it and 1 at or below it
        assert set(table["p_value"]) <= {0.5, 1.0}
        assert (table["seed"] == 3).all() and sorted(table["index"]) == [0, 1, 5, 6, 7, 11]
        detail = class_metrics(table, "floor")
        assert np.allclose(detail["auroc"], 1.0)  # the other class is far from the training images' mean
    class0 = tables["floor_mean_image"].query("`class` == 0").set_index("index")["score"]
    assert class0[11] == pytest.approx(0.0, abs=1e-6) and class0[0] == pytest.approx(4 * 210 / 127.5, rel=1e-5)


def detail_of(method, aurocs, half_width, seed=0):
    return pd.DataFrame(
        {
            "method": method,
            "seed": seed,
            "class": range(len(aurocs)),
            "auroc": aurocs,
            "auroc_low": np.array(aurocs) - half_width,
            "auroc_high": np.array(aurocs) + half_width,
        }
    )


def test_mean_interval_combines_class_intervals_as_independent_estimates():
    detail = detail_of("m", [0.8, 0.9, 0.7, 0.6], 0.1)
    row = mean_interval(detail).iloc[0]
    se = 0.1 / Z  # each class: half width 0.1 = Z se
    assert row["auroc"] == pytest.approx(0.75)
    assert row["high"] - row["auroc"] == pytest.approx(Z * np.sqrt(4 * se**2) / 4)  # = 0.05


def test_methods_are_marked_against_the_higher_floor():
    detail = pd.concat(
        [
            detail_of("floor_mean_image", [0.80] * 4, 0.05),
            detail_of("floor_intensity", [0.60] * 4, 0.05),
            detail_of("clear", [0.95] * 4, 0.04),  # interval 0.95 +- 0.02: above 0.80
            detail_of("close", [0.83] * 4, 0.10),  # 0.83 +- 0.05: reaches below 0.80
            detail_of("below", [0.79] * 4, 0.01),
        ]
    )
    verdicts = floor_verdicts(detail)
    assert set(verdicts) == {"clear", "close", "below"}
    assert verdicts["clear"] == (pytest.approx(0.15), "clears the floor")
    assert verdicts["close"][1] == "does not clear the floor"
    assert verdicts["below"] == (pytest.approx(-0.01), "below the floor")
    assert floor_verdicts(detail_of("alone", [0.9], 0.1)) == {}


def test_banded_auroc_removes_a_brightness_only_score_and_keeps_a_score_that_ranks_within_bands():
    from ganad.evaluation.floors import banded_auroc

    rng = np.random.default_rng(0)
    brightness = rng.uniform(0, 1, 4000)
    anomalous = rng.uniform(0, 1, 4000) < brightness  # brighter images are more often anomalous
    assert roc_auc_score(anomalous, brightness) > 0.75  # a score that is brightness alone looks good plainly
    assert abs(banded_auroc(anomalous, brightness, brightness, bands=20) - 0.5) < 0.05  # and not within bands
    informed = anomalous + rng.normal(0, 0.5, 4000)  # a score that sees the label through noise
    assert banded_auroc(anomalous, informed, brightness) == pytest.approx(roc_auc_score(anomalous, informed), abs=0.05)


def test_banded_auroc_is_the_size_weighted_mean_of_the_bands_aurocs_by_hand():
    from ganad.evaluation.floors import banded_auroc

    covariate = np.array([0, 0, 0, 0, 1, 1, 1, 1.0])
    anomalous = np.array([0, 1, 0, 1, 0, 0, 1, 1])
    scores = np.array([1, 2, 3, 4, 1, 2, 3, 4.0])  # band 0: AUROC 0.75; band 1: 1.0
    assert banded_auroc(anomalous, scores, covariate, bands=2) == pytest.approx((4 * 0.75 + 4 * 1.0) / 8)
    assert np.isnan(banded_auroc(np.zeros(8), scores, covariate, bands=2))  # no band holds both kinds
