import numpy as np
import pytest
import torch

from ganad.evaluation.figures import reconstruction_grid, roc_curves, score_histogram

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def images(n, channels, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, channels, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 3])
def test_reconstruction_grid_writes_png(tmp_path, channels):
    x, g, d = images(3, channels, 0), images(3, channels, 1), images(3, channels, 2)
    rows = [
        (f"class {c}: {kind}", x[i], g[i], d[i])
        for i, (c, kind) in enumerate([(0, "normal"), (0, "anomaly"), (1, "normal")])
    ]
    out = reconstruction_grid(rows, tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png" and is_png(out)


def test_reconstruction_grid_takes_tensors_and_a_single_row(tmp_path):
    x = torch.zeros(1, 32, 32)
    assert is_png(reconstruction_grid([("one", x, x, x)], tmp_path / "g.png"))


@pytest.mark.parametrize(
    "bad,match",
    [
        ((1, 28, 28), r"shape \(C, 32, 32\).*got shape \(1, 28, 28\)"),
        ((2, 32, 32), r"C = 1 or 3, got shape \(2, 32, 32\)"),
        ((32, 32), r"got shape \(32, 32\)"),
        ((1, 1, 32, 32), r"got shape \(1, 1, 32, 32\)"),
    ],
)
def test_reconstruction_grid_rejects_bad_shapes(tmp_path, bad, match):
    ok = np.zeros((1, 32, 32))
    with pytest.raises(ValueError, match=match):
        reconstruction_grid([("r", ok, np.zeros(bad), ok)], tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_reconstruction_grid_rejects_mixed_shapes_empty_rows_and_short_rows(tmp_path):
    grey, rgb = np.zeros((1, 32, 32)), np.zeros((3, 32, 32))
    with pytest.raises(ValueError, match="mixes image shapes"):
        reconstruction_grid([("r", grey, rgb, grey)], tmp_path / "g.png")
    with pytest.raises(ValueError, match="no rows"):
        reconstruction_grid([], tmp_path / "g.png")
    with pytest.raises(ValueError, match=r"row 0 must be \(title, x, G\(x\), D\(G\(x\)\)\)"):
        reconstruction_grid([("r", grey, grey)], tmp_path / "g.png")
    with pytest.raises(ValueError, match="NaN"):
        reconstruction_grid([("r", grey, grey, np.full((1, 32, 32), np.nan))], tmp_path / "g.png")


def test_score_histogram_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(10, 1, 300), rng.normal(14, 2, 100)])
    anomalous = np.repeat([False, True], [300, 100])
    assert is_png(score_histogram(scores, anomalous, tmp_path / "h.png", title="mnist, class 9"))
    assert is_png(score_histogram(scores[:300], np.zeros(300, dtype=int), tmp_path / "normal_only.png"))


@pytest.mark.parametrize(
    "scores,anomalous,match",
    [
        (np.zeros(5), np.zeros(4), "one length"),
        (np.zeros((5, 2)), np.zeros(5), "1-D"),
        (np.array([1.0, np.nan]), np.array([0, 1]), "NaN"),
        (np.array([1.0, 2.0]), np.array([0, 2]), "only 0/1"),
        (np.zeros(0), np.zeros(0), "no scores"),
    ],
)
def test_score_histogram_rejects_bad_input(tmp_path, scores, anomalous, match):
    with pytest.raises(ValueError, match=match):
        score_histogram(scores, anomalous, tmp_path / "h.png")


def test_roc_curves_writes_png(tmp_path):
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    curves = {}
    for cls in range(3):
        y = rng.integers(0, 2, 200)
        s = rng.normal(size=200) + y * (cls + 1)
        fpr, tpr, _ = roc_curve(y, s)
        curves[f"class {cls}"] = (fpr, tpr, roc_auc_score(y, s))
    assert is_png(roc_curves(curves, tmp_path / "roc.png", title="ADAE, mnist"))


@pytest.mark.parametrize(
    "curves,match",
    [
        ({}, "non-empty dict"),
        ({"a": (np.array([0, 1.0]), np.array([0, 0.5, 1.0]), 0.5)}, "one length"),
        ({"a": (np.array([0, 1.0]), np.array([0, 1.0]))}, r"must be \(fpr, tpr, auc\)"),
        ({"a": (np.array([0, 2.0]), np.array([0, 1.0]), 0.5)}, r"in \[0, 1\]"),
        ({"a": (np.array([0, 1.0]), np.array([0, 1.0]), 1.5)}, "AUC 1.5"),
        ({"a": (np.zeros((2, 2)), np.zeros((2, 2)), 0.5)}, "1-D"),
    ],
)
def test_roc_curves_rejects_bad_input(tmp_path, curves, match):
    with pytest.raises(ValueError, match=match):
        roc_curves(curves, tmp_path / "roc.png")


def test_image_rows_writes_png_and_rejects_bad_shapes(tmp_path):
    from ganad.evaluation.figures import image_rows

    rows = [("most anomalous", images(5, 1)), ("least anomalous", images(3, 1, seed=1))]
    assert is_png(image_rows(rows, tmp_path / "ranked.png", title="class 9"))
    with pytest.raises(ValueError, match=r"got shape \(1, 28, 28\)"):
        image_rows([("r", np.zeros((2, 1, 28, 28)))], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="holds no images"):
        image_rows([("r", np.zeros((0, 1, 32, 32)))], tmp_path / "bad.png")
