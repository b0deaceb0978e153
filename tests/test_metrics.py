"""Uncertainty on hand-built tables: mean and std over seeds, the bootstrap interval over test images (the
vectorised statistic against scikit-learn on the same resamples), and the paired comparison of methods."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap
from sklearn.metrics import roc_auc_score

from ganad.evaluation.metrics import (
    _resampled_auroc,
    auroc_interval,
    class_metrics,
    class_metrics_of,
    headline,
    paired_comparisons,
    seed_summary,
)
from ganad.evaluation.tables import leak_table


def detail_table(values: dict[str, list[list[float]]]) -> pd.DataFrame:
    """{method: [[auroc of class 0..C-1] per seed]} as the evaluate stage's table."""
    rows = [
        (m, seed, cls, v, v - 0.05, v + 0.05, v, 100, 50)
        for m, per_seed in values.items()
        for seed, row in enumerate(per_seed)
        for cls, v in enumerate(row)
    ]
    return pd.DataFrame(
        rows, columns=["method", "seed", "class", "auroc", "auroc_low", "auroc_high", "ap", "n_test", "n_anomalous"]
    )


def test_mean_and_std_over_seeds_by_hand():
    detail = detail_table({"a": [[0.6, 0.8], [0.7, 0.9], [0.8, 1.0]], "b": [[0.5, 0.5]]})
    summary = seed_summary(detail).set_index(["method", "class"])
    # class 0 of a: seeds 0.6, 0.7, 0.8 -> mean 0.7, sample std 0.1; class means per seed 0.7, 0.8, 0.9
    assert summary.loc[("a", "0"), "mean"] == pytest.approx(0.7)
    assert summary.loc[("a", "0"), "std"] == pytest.approx(0.1)
    assert summary.loc[("a", "mean"), "mean"] == pytest.approx(0.8)
    assert summary.loc[("a", "mean"), "std"] == pytest.approx(0.1)
    assert summary.loc[("a", "mean"), "n"] == 3
    assert summary.loc[("b", "mean"), "std"] == 0.0 and summary.loc[("b", "mean"), "n"] == 1  # one seed: no spread
    assert headline(detail) == {"a": {"auroc": 0.8, "auroc_std": 0.1}, "b": {"auroc": 0.5, "auroc_std": 0.0}}


def test_the_vectorised_auroc_is_scikit_learns_on_every_resample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounded: ties, which count half
    statistic = _resampled_auroc(y, s)
    idx = rng.integers(0, 300, size=(20, 300))
    np.testing.assert_allclose(statistic(idx), [roc_auc_score(y[i], s[i]) for i in idx], rtol=0, atol=1e-12)


def test_bootstrap_interval_equals_scipys_with_scikit_learn_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(150), np.ones(50)].astype(int)
    s = rng.normal(size=200) + 0.8 * y
    low, high = auroc_interval(y, s, seed=5, n_resamples=300)
    plain = bootstrap(
        (np.arange(200),),
        lambda i: roc_auc_score(y[i.astype(int)], s[i.astype(int)]),
        vectorized=False,
        n_resamples=300,
        method="percentile",
        random_state=np.random.default_rng(5),
    )
    assert (low, high) == pytest.approx(tuple(plain.confidence_interval), abs=1e-12)
    assert low < roc_auc_score(y, s) < high
    y4, s4 = np.tile(y, 4), np.r_[s, s + 1e-6, s + 2e-6, s + 3e-6]
    low4, high4 = auroc_interval(y4, s4, seed=5, n_resamples=300)
    assert high4 - low4 < 0.7 * (high - low)  # four times the images: about half the width


def test_class_metrics_per_seed_and_class_from_a_score_table():
    rng = np.random.default_rng(2)
    rows = []
    for seed in (0, 1):
        for cls in (0, 1):
            y = np.r_[np.zeros(60), np.ones(40)].astype(int)
            rows.append(
                pd.DataFrame(
                    {
                        "class": cls,
                        "seed": seed,
                        "index": np.arange(100),
                        "label": y,
                        "anomalous": y,
                        "score": rng.normal(size=100) + (1 + seed) * y,
                    }
                )
            )
    table = pd.concat(rows)
    detail = class_metrics(table, "m", n_resamples=200)
    assert detail[["seed", "class"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    for row, (_, group) in zip(detail.itertuples(), table.groupby(["seed", "class"])):
        assert row.auroc == pytest.approx(roc_auc_score(group["anomalous"], group["score"]))
        assert row.auroc_low < row.auroc < row.auroc_high and row.n_test == 100 and row.n_anomalous == 40
    assert detail[detail.seed == 1].auroc.mean() > detail[detail.seed == 0].auroc.mean()


def test_class_metrics_in_a_spawned_pool_equal_the_serial_ones():
    """The evaluate stage's pool (spawned: this test process has run torch and OpenMP) gives the serial tables."""
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(80), np.ones(40)].astype(int)
    tables = {
        m: pd.DataFrame(
            {
                "class": np.repeat([0, 1], 120),
                "seed": 0,
                "anomalous": np.tile(y, 2),
                "score": rng.normal(size=240) + shift * np.tile(y, 2),
            }
        )
        for m, shift in (("a", 0.5), ("b", 1.0), ("c", 2.0))
    }
    serial, pooled = class_metrics_of(tables, processes=1), class_metrics_of(tables, processes=2)
    assert list(pooled) == ["a", "b", "c"]
    for method in tables:
        pd.testing.assert_frame_equal(pooled[method], serial[method], check_exact=True)
    assert serial["a"].auroc.mean() < serial["b"].auroc.mean() < serial["c"].auroc.mean()


def test_paired_comparison_names_the_better_method_only_when_the_classes_agree():
    main = [[0.9] * 10, [0.92] * 10]
    worse = [[0.7 + 0.01 * c for c in range(10)]] * 2
    tied = [[0.9 + (0.01 if c % 2 else -0.01) for c in range(10)]] * 2
    table = paired_comparisons(detail_table({"main": main, "worse": worse, "tied": tied}), "main").set_index("method")
    assert table.loc["worse", "main_higher"] == 10 and table.loc["worse", "p"] == pytest.approx(2 / 1024)
    assert table.loc["worse", "verdict"] == "main higher"
    assert table.loc["tied", "verdict"] == "no significant difference"
    assert table.loc["worse", "p_adjusted"] >= table.loc["worse", "p"]


def test_the_leak_table_sets_disjoint_beside_leaky_per_seed():
    disjoint = detail_table({"kde": [[0.8, 0.8], [0.82, 0.82]]})
    leaky = detail_table({"kde": [[0.9, 0.9], [0.94, 0.94]]})
    row = leak_table("mnist", disjoint, leaky).set_index("method").loc["kde"]
    assert row["disjoint (ours)"] == "0.810 ± 0.014" and row["leaky (EGBAD's split)"] == "0.920 ± 0.028"
    assert row["leaky - disjoint"] == "+0.110 ± 0.014" and row["seeds"] == 2


def test_the_results_page_names_each_datasets_source_and_size():
    from ganad.config.params import DatasetParams
    from ganad.evaluation.tables import data_line

    meta = {"n_train": 50000, "n_test": 10000, "channels": 3, "size": 32, "classes": list("abcdefghij")}
    line = data_line("cifar10", DatasetParams(source="npz", npz_path="data/external/cifar10.npz"), meta)
    assert line == (
        "- cifar10: 50,000 training-pool and 10,000 test images (3 channels, 32x32, 10 classes) "
        "from the npz archive `data/external/cifar10.npz`."
    )
    line = data_line("mnist", DatasetParams(), dict(meta, n_train=4000, n_test=1000, channels=1))
    assert "4,000 training-pool" in line and "1 channel," in line and "embedded MNIST subset" in line
