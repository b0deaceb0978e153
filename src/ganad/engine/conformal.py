"""Split-conformal p-values: how unusual a score is among the scores of held-out normal images.

Every trained model has a slice of normal images it never trained on (the validation split of the image
protocols, the held-out healthy subjects of the brain study, `rank.val_fraction` of a ranking's normal folder).
Scored by the same model, those n calibration scores give each new image's score s the p-value

    p(s) = (1 + #{calibration scores >= s}) / (n + 1),

and an image is flagged at level alpha when p(s) <= alpha. When the new normal images are exchangeable with the
calibration ones (same source, same scanner or camera, same preprocessing), a normal image is flagged with
probability at most alpha, whatever the model and however poorly it was trained: the guarantee is the
calibration's, not the model's. No anomalous image and no label is used. With fewer than 1/alpha - 1 calibration
images no score can reach p <= alpha, and nothing is flagged.

A model whose epoch was chosen on the same validation images (`select: best_val`, the lowest mean score) sees
its calibration scores pulled slightly low, so its p-values run slightly small; the observed false-alarm rate on
the test normals (the results page's operating points) shows by how much.
"""

from __future__ import annotations

import numpy as np


def p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(1 + #{calibration >= s}) / (n + 1) for every score s; ties count as at least as extreme."""
    calibration = np.sort(np.asarray(calibration, dtype=np.float64))
    scores = np.asarray(scores, dtype=np.float64)
    at_least = len(calibration) - np.searchsorted(calibration, scores, side="left")
    return (1.0 + at_least) / (len(calibration) + 1.0)


def threshold(calibration: np.ndarray, alpha: float) -> float:
    """The score above which an image is flagged at level `alpha` (p <= alpha exactly when the score exceeds it);
    +inf when there are too few calibration scores for any p-value to reach alpha."""
    calibration = np.sort(np.asarray(calibration, dtype=np.float64))[::-1]
    # p(s) <= alpha  <=>  #{calibration >= s} <= alpha (n + 1) - 1 =: k  <=>  s > the (k + 1)-th largest
    k = int(np.floor(alpha * (len(calibration) + 1) + 1e-9)) - 1
    if k < 0:
        return float("inf")
    return float(calibration[k]) if k < len(calibration) else float("-inf")


def flagged(p: np.ndarray, alpha: float) -> np.ndarray:
    """Whether each p-value is at or below `alpha`."""
    return np.asarray(p) <= alpha + 1e-12


def calibration_sample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Which of `n` validation images calibrate: all, or `limit` of them drawn without replacement (seeded), in
    order."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
