import numpy as np
import pytest

from ganad.data.protocols import anomaly_labels, check_splits, leave_one_class_out, load_split, make_splits, save_splits
from ganad.errors import DataError, MissingInput

# Official MNIST class counts: 60,000 training and 10,000 test images.
MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_labels():
    rng = np.random.default_rng(1)
    train = rng.permutation(np.repeat(np.arange(10), MNIST_TRAIN))
    test = rng.permutation(np.repeat(np.arange(10), MNIST_TEST))
    return np.concatenate([train, test]), len(train)


def assert_disjoint(split):
    parts = [set(split[k].tolist()) for k in ("train", "val", "test")]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    for k in ("train", "val", "test"):
        assert len(np.unique(split[k])) == len(split[k])


@pytest.mark.parametrize("cls", [0, 1, 9])
def test_leave_one_class_out_counts_on_full_mnist(mnist_labels, cls):
    labels, n_train = mnist_labels
    split = make_splits("leave_one_class_out", labels, n_train, [cls], seed=0)[cls]
    assert_disjoint(split)
    n_cls = MNIST_TRAIN[cls] + MNIST_TEST[cls]
    n_normal = 70000 - n_cls
    n_fit = round(0.8 * n_normal)
    assert len(split["train"]) + len(split["val"]) == n_fit
    assert len(split["val"]) == round(0.1 * n_fit)
    assert len(split["test"]) == n_normal - n_fit + n_cls
    # training and validation hold normal images only; the test holds every anomaly
    assert not np.any(labels[split["train"]] == cls) and not np.any(labels[split["val"]] == cls)
    assert np.sum(labels[split["test"]] == cls) == n_cls
    # every normal image is in exactly one part
    assert len(split["train"]) + len(split["val"]) + np.sum(labels[split["test"]] != cls) == n_normal


@pytest.mark.parametrize("cls", [0, 5])
def test_one_class_normal_counts_on_full_mnist(mnist_labels, cls):
    labels, n_train = mnist_labels
    split = make_splits("one_class_normal", labels, n_train, [cls], seed=0)[cls]
    assert_disjoint(split)
    assert len(split["train"]) + len(split["val"]) == MNIST_TRAIN[cls]
    assert np.all(labels[split["train"]] == cls) and np.all(labels[split["val"]] == cls)
    assert np.all(split["train"] < n_train) and np.all(split["val"] < n_train)
    assert len(split["test"]) == 5000 and np.all(split["test"] >= n_train)
    # a random draw over all classes: every class appears, the normal one near its share
    test_labels = labels[split["test"]]
    assert set(test_labels.tolist()) == set(range(10))
    assert abs(np.mean(test_labels == cls) - MNIST_TEST[cls] / 10000) < 0.03


def test_same_seed_same_indices_and_other_seed_differs(mnist_labels):
    labels, n_train = mnist_labels
    for protocol in ("leave_one_class_out", "one_class_normal"):
        a = make_splits(protocol, labels, n_train, [3, 4], seed=7)
        b = make_splits(protocol, labels, n_train, [3, 4], seed=7)
        c = make_splits(protocol, labels, n_train, [3, 4], seed=8)
        for cls in (3, 4):
            for part in ("train", "val", "test"):
                np.testing.assert_array_equal(a[cls][part], b[cls][part])
            assert not np.array_equal(a[cls]["train"], c[cls]["train"])


def test_class_list_does_not_shift_other_classes(mnist_labels):
    labels, n_train = mnist_labels
    alone = make_splits("leave_one_class_out", labels, n_train, [4], seed=0)[4]
    among = make_splits("leave_one_class_out", labels, n_train, [0, 4, 9], seed=0)[4]
    np.testing.assert_array_equal(alone["test"], among["test"])


def test_leaky_option_reproduces_egbad_overlap(mnist_labels):
    labels, _ = mnist_labels
    clean = leave_one_class_out(labels, 0, np.random.default_rng(0))
    leaky = leave_one_class_out(labels, 0, np.random.default_rng(0), leaky=True)
    train = set(clean["train"].tolist()) | set(clean["val"].tolist())
    assert not train & set(clean["test"].tolist())
    leaked = train & set(leaky["test"].tolist())
    normal_test = np.sum(labels[leaky["test"]] != 0)
    assert 0.7 < len(leaked) / normal_test < 0.9  # about 80 %, as in the public EGBAD code


def test_the_leaky_protocol_shares_training_and_validation_and_leaks_about_80_percent(mnist_labels):
    """The leak audit scores one set of models on two test splits: the leaky protocol's training and validation
    images are leave-one-class-out's, its test anomalies too; only the test normals differ, and the share of
    them that training holds, as `leaked_share` measures it, is 0 for the disjoint split and about 80 % for EGBAD's."""
    from ganad.data.protocols import LEAKY_PROTOCOL, leaked_share, trained_under

    labels, n_train = mnist_labels
    disjoint = make_splits("leave_one_class_out", labels, n_train, [0, 7], seed=3)
    leaky = make_splits(LEAKY_PROTOCOL, labels, n_train, [0, 7], seed=3)
    assert trained_under(LEAKY_PROTOCOL) == "leave_one_class_out"
    for cls in (0, 7):
        for part in ("train", "val"):
            np.testing.assert_array_equal(disjoint[cls][part], leaky[cls][part])
        test = leaky[cls]["test"]
        np.testing.assert_array_equal(test[labels[test] == cls], np.flatnonzero(labels == cls))
        assert leaked_share(disjoint[cls], "leave_one_class_out", labels, cls) == 0.0
        normal = test[labels[test] != cls]
        seen = np.isin(normal, np.concatenate([leaky[cls]["train"], leaky[cls]["val"]])).mean()
        assert leaked_share(leaky[cls], LEAKY_PROTOCOL, labels, cls) == seen and 0.7 < seen < 0.9


def test_anomaly_labels_follow_protocol():
    labels = np.array([0, 1, 2, 0])
    np.testing.assert_array_equal(anomaly_labels("leave_one_class_out", labels, 0), [1, 0, 0, 1])
    np.testing.assert_array_equal(anomaly_labels("one_class_normal", labels, 0), [0, 1, 1, 0])
    with pytest.raises(ValueError, match="unknown protocol"):
        anomaly_labels("nope", labels, 0)


def test_splits_round_trip_and_missing_class(tmp_path, mnist_labels):
    labels, n_train = mnist_labels
    splits = make_splits("one_class_normal", labels, n_train, [2], seed=0)
    save_splits(tmp_path / "s.npz", splits)
    loaded = load_split(tmp_path / "s.npz", 2)
    np.testing.assert_array_equal(loaded["test"], splits[2]["test"])
    with pytest.raises(MissingInput, match="class 3"):
        load_split(tmp_path / "s.npz", 3)


def test_a_class_without_training_images_or_anomalies_stops_the_split():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])  # class 2: one image
    names = ["a", "b", "c"]
    splits = make_splits("leave_one_class_out", labels, len(labels), [0, 1], 0)
    check_splits(splits, "leave_one_class_out", labels, "tiny", names)  # both classes are fine
    no_train = {2: {"train": np.array([], dtype=np.int64), "val": np.array([], dtype=np.int64), "test": np.array([6])}}
    with pytest.raises(DataError, match=r"tiny one_class_normal: class 2 \(c\) has no training images"):
        check_splits(no_train, "one_class_normal", labels, "tiny", names)
    only_normal = {0: {"train": np.array([3, 4]), "val": np.array([], dtype=np.int64), "test": np.array([5])}}
    with pytest.raises(DataError, match=r"class 0 \(a\): its test split has no anomalous images"):
        check_splits(only_normal, "leave_one_class_out", labels, "tiny", names)


@pytest.mark.parametrize("protocol", ["leave_one_class_out", "one_class_normal", "leave_one_class_out_leaky"])
def test_test_max_keeps_training_and_validation_and_the_anomalous_share(mnist_labels, protocol):
    labels, n_train = mnist_labels
    full = make_splits(protocol, labels, n_train, [3], seed=0)[3]
    cut = make_splits(protocol, labels, n_train, [3], seed=0, test_max=500)[3]
    again = make_splits(protocol, labels, n_train, [3], seed=0, test_max=500)[3]
    assert np.array_equal(cut["train"], full["train"]) and np.array_equal(cut["val"], full["val"])
    assert len(cut["test"]) == 500 and np.isin(cut["test"], full["test"]).all()
    assert np.array_equal(cut["test"], again["test"])  # seeded: every method scores the same images
    share = anomaly_labels(protocol, labels[full["test"]], 3).mean()
    assert anomaly_labels(protocol, labels[cut["test"]], 3).mean() == pytest.approx(share, abs=1 / 500)
    # a test split already within the limit is kept whole
    assert np.array_equal(make_splits(protocol, labels, n_train, [3], seed=0, test_max=10**6)[3]["test"], full["test"])


def test_each_file_names_the_stage_that_writes_it_and_the_audit_its_own():
    """A broken file's message gives the command that rebuilds it: the leak audit's files come from its own
    stages (leak_split, leak_score, leak_evaluate), every other protocol's from split, train_score, evaluate."""
    from ganad.data.protocols import rebuild_metrics, rebuild_splits
    from ganad.runtime.score_files import rebuild_scores

    assert rebuild_splits("data/splits/mnist/leave_one_class_out_leaky.npz") == (
        "dvc repro -f -s leak_split@mnist-leave_one_class_out_leaky"
    )
    assert rebuild_splits("data/splits/mnist/one_class_normal.npz") == "dvc repro -f -s split@mnist-one_class_normal"
    assert rebuild_metrics("mnist", "leave_one_class_out_leaky") == (
        "dvc repro -f -s leak_evaluate@mnist-leave_one_class_out_leaky"
    )
    assert rebuild_metrics("cifar10", "one_class_normal") == "dvc repro -f -s evaluate@cifar10-one_class_normal"
    assert rebuild_scores("data/scores/mnist/leave_one_class_out_leaky/adae.csv") == (
        "dvc repro -f -s leak_score@mnist-leave_one_class_out_leaky-adae"
    )
    assert rebuild_scores("data/scores/mnist/one_class_normal/adae.selected.json") == (
        "dvc repro -f -s train_score@mnist-one_class_normal-adae"
    )
