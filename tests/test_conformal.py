"""Conformal p-values from normal validation scores (ganad.engine.conformal): the formula, the threshold it
implies, and the false-alarm guarantee on exchangeable normals (and its failure on shifted ones)."""

import numpy as np
import pytest
from scipy.stats import binomtest

from ganad.engine.conformal import calibration_sample, flagged, p_values, threshold
from ganad.evaluation.metrics import operating_point


def test_p_values_by_hand_with_ties():
    calibration = np.array([3.0, 1.0, 2.0, 2.0])
    # #{calibration >= s}: 4, 3 (ties count as at least as extreme), 1, 1, 0; over n + 1 = 5
    assert p_values(calibration, np.array([0.0, 2.0, 2.5, 3.0, 4.0])).tolist() == [1.0, 0.8, 0.4, 0.4, 0.2]
    assert p_values(np.array([]), np.array([5.0])).tolist() == [1.0]  # no calibration: nothing is unusual


@pytest.mark.parametrize("n, alpha", [(19, 0.05), (99, 0.05), (40, 0.1), (7, 0.3), (200, 0.01)])
def test_the_threshold_flags_exactly_the_images_whose_p_value_is_at_most_alpha(n, alpha):
    rng = np.random.default_rng(n)
    calibration = np.round(rng.normal(size=n), 1)  # rounded: ties between calibration and test scores
    scores = np.concatenate([np.round(rng.normal(size=500), 1), calibration])
    limit = threshold(calibration, alpha)
    assert np.array_equal(flagged(p_values(calibration, scores), alpha), scores > limit)


def test_too_few_calibration_images_flag_nothing():
    assert threshold(np.arange(18.0), 0.05) == np.inf  # p >= 1/19 > 0.05
    assert not flagged(p_values(np.arange(18.0), np.array([1e9])), 0.05).any()
    assert threshold(np.arange(19.0), 0.05) == 18.0  # 19 images: only a score above all of them


def test_false_alarms_on_exchangeable_normals_stay_at_alpha_and_rise_on_shifted_ones():
    rng = np.random.default_rng(0)
    alpha, n, draws = 0.05, 99, 20000
    # each draw: a model's 99 validation scores and one test normal from the same distribution, so the draws'
    # flags are independent, each with probability floor(alpha (n + 1)) / (n + 1) = alpha here
    calibration, normal = rng.gamma(2.0, size=(draws, n)), rng.gamma(2.0, size=draws)
    p = (1 + (calibration >= normal[:, None]).sum(axis=1)) / (n + 1)
    assert np.array_equal(p, [p_values(c, s[None])[0] for c, s in zip(calibration[:50], normal[:50])] + list(p[50:]))
    flags = int(flagged(p, alpha).sum())
    assert binomtest(flags, draws, alpha, alternative="greater").pvalue > 1e-3  # not above alpha
    low, high = binomtest(flags, draws, alpha).proportion_ci(0.999)
    assert low <= alpha <= high  # and not far below it: the bound is met, the flags not simply withheld
    # another scanner: the test normals shifted, the guarantee no longer holds and the rate shows it
    shifted = flagged(p_values(calibration[0], rng.gamma(2.0, size=2000) + 1.5), alpha).mean()
    assert shifted > 3 * alpha


def test_operating_points_count_the_flags_on_normals_and_anomalies():
    anomalous = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 1.0])
    p = np.array([0.9, 0.5, 0.3, 0.04, 0.06, 0.01])
    far, detection, at_fixed = operating_point(anomalous, scores, p, 0.05)
    assert (far, detection) == (0.25, 0.5)
    assert at_fixed == 0.5  # at no false alarm (the top normal at 0.9 outranks the anomaly at 0.8) one of two
    assert np.isnan(operating_point(anomalous, scores, None, 0.05)[0])


def test_the_calibration_sample_is_seeded_and_whole_when_small():
    assert calibration_sample(10, 20, 0).tolist() == list(range(10))
    a, b = calibration_sample(1000, 100, 3), calibration_sample(1000, 100, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 100 and (np.diff(a) > 0).all()
