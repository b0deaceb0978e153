"""The convergence study's split (training images only) and what is read off its curves."""

import json

import numpy as np
import pandas as pd
import pytest

from ganad.data.protocols import save_splits
from ganad.evaluation.convergence import (
    FLOOR_COLUMNS,
    FLOORS_FILE,
    STUDY_FILE,
    budget_verdicts,
    fraction_of_plateau,
    mean_curve,
    paper_budgets,
    plateau_summary,
    study_settings,
    study_split,
    summarise,
)
from ganad.runtime import layout


@pytest.mark.parametrize("protocol, share", [("leave_one_class_out", 0.1), ("one_class_normal", 0.9)])
def test_study_split_uses_training_images_only_and_keeps_its_parts_apart(protocol, share):
    rng = np.random.default_rng(0)
    train_labels = rng.integers(0, 10, 3000)  # the official training images; the test images are other rows
    split = study_split(train_labels, protocol, cls=3, test_size=400, val_fraction=0.1, seed=5)
    everything = np.concatenate(list(split.values()))
    assert len(np.unique(everything)) == len(everything)  # train, val and study test are disjoint
    assert everything.max() < len(train_labels)  # indices of training images: no official test image
    anomalous = (train_labels == 3) if protocol == "leave_one_class_out" else (train_labels != 3)
    assert not anomalous[split["train"]].any() and not anomalous[split["val"]].any()  # normals only
    assert len(split["test"]) == 400 and anomalous[split["test"]].sum() == round(share * 400)
    again = study_split(train_labels, protocol, cls=3, test_size=400, val_fraction=0.1, seed=5)
    assert all(np.array_equal(split[p], again[p]) for p in split)  # seeded
    with pytest.raises(ValueError, match="needs"):
        study_split(train_labels, protocol, cls=3, test_size=5000, val_fraction=0.1, seed=5)


def curve(aurocs, step=100):
    n = len(aurocs)
    return pd.DataFrame({"updates": step * np.arange(1, n + 1), "cpu_s": np.arange(1, n + 1), "study_auroc": aurocs})


def test_plateau_and_the_updates_that_reach_it_for_good():
    # a lucky early peak (0.9 at 200 updates) is not credited: the curve falls back below 90 % afterwards
    summary = plateau_summary(curve([0.6, 0.9, 0.7, 0.87, 0.885, 0.9, 0.9, 0.9]), tail=3)
    assert summary["plateau_auroc"] == pytest.approx(0.9)
    assert summary["updates_90"] == 400  # 0.87 >= 0.5 + 0.9 * 0.4 = 0.86, and never below after
    assert summary["updates_95"] == 500  # 0.885 >= 0.5 + 0.95 * 0.4 = 0.88
    assert summary["cpu_s_90"] == 4
    never = plateau_summary(curve([0.5, 0.45, 0.5]), tail=3)  # at chance: no gain to reach
    assert np.isnan(never["updates_90"])


def test_a_plateau_below_chance_is_reached_from_chance_downwards():
    # scores that rank the anomalies as the most normal converge too, to an AUROC below 0.5
    summary = plateau_summary(curve([0.45, 0.2, 0.3, 0.14, 0.1, 0.1, 0.1]), tail=3)
    assert summary["plateau_auroc"] == pytest.approx(0.1)
    assert summary["updates_90"] == 400  # 0.14 <= 0.5 - 0.9 * 0.4 = 0.14, and never above after
    assert summary["updates_95"] == 500  # 0.1 <= 0.5 - 0.95 * 0.4 = 0.12
    assert fraction_of_plateau(curve([0.45, 0.3]), 200, 0.1) == pytest.approx(0.5)


def test_fraction_of_plateau_reads_the_curve_at_a_budget():
    c = curve([0.6, 0.7, 0.8, 0.9])
    assert fraction_of_plateau(c, 250, 0.9) == pytest.approx((0.7 - 0.5) / 0.4)
    assert np.isnan(fraction_of_plateau(c, 50, 0.9))


def test_the_class_mean_curve_interpolates_classes_and_holds_a_stopped_one_at_its_last_value():
    a = curve([0.6, 0.8, 0.9], step=100).assign(**{"class": 0})
    b = curve([0.7, 0.9], step=150).assign(**{"class": 1})  # stopped at 300 by its criterion
    c = curve([0.7], step=100).assign(**{"class": 2})  # stopped at 100
    mean = mean_curve(pd.concat([a, b]))
    assert list(mean["updates"]) == [100, 150, 200, 300]
    assert mean["study_auroc"].iloc[0] == pytest.approx((0.6 + 0.7) / 2)  # b held at its first value before 150
    held = mean_curve(pd.concat([a, c]))
    assert held["study_auroc"].iloc[-1] == pytest.approx((0.9 + 0.7) / 2)  # c held at 0.7 after 100
    both = pd.concat([a, b]).assign(method="m", protocol="p")
    table = summarise(both, tail=1)
    assert list(table["class"]) == ["0", "1", "mean"]


def study_folder(tmp_path, settings, data="embedded:mnist"):
    """A study on disk: one method and protocol, two classes that plateau at 0.9."""
    rows = [
        ("dcae", "one_class_normal", cls, 0, updates, 1.0, 0.1, auroc)
        for cls in (0, 1)
        for updates, auroc in [(50, 0.6), (100, 0.8), (150, 0.88), (200, 0.9), (250, 0.9), (300, 0.9)]
    ]
    columns = ["method", "protocol", "class", "epoch", "updates", "cpu_s", "val_score", "study_auroc"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "curves.csv", index=False)
    (tmp_path / STUDY_FILE).write_text(json.dumps({"data": data, "settings": {"dcae": settings}}))
    return tmp_path


def test_a_budget_short_of_90_percent_of_the_plateau_is_marked_under_trained(tmp_path):
    config = {"width": 16, "lr": 0.001, "min_steps": 50, "epochs": 1, "threads": 0}
    study = study_folder(tmp_path, study_settings(config))
    key = ("dcae", "one_class_normal")
    short = budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 120})[key]
    assert short.startswith("under-trained: 120 updates, 75 % of the plateau (0.900)")  # (0.8 - 0.5) / 0.4
    assert "90 % at 150" in short  # 0.88 >= 0.86 from 150 updates on
    enough = budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 200})[key]
    assert enough == "200 updates, 100 % of the plateau (0.900)"
    beyond = budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 900})[key]
    assert beyond.endswith("(the study stopped at 300)")
    # the budget keys may differ; anything the curves depend on may not, nor the data
    longer = {**config, "min_steps": 400, "threads": 2}
    assert "under-trained" not in budget_verdicts(study, "embedded:mnist", {"dcae": longer}, {key: 400})[key]
    # a setting the study predates counts as its default there: fp32 matches the study, bf16 does not
    assert (
        "other settings"
        not in budget_verdicts(study, "embedded:mnist", {"dcae": {**config, "precision": "fp32"}}, {key: 200})[key]
    )
    bf16 = {**config, "precision": "bf16"}
    assert budget_verdicts(study, "embedded:mnist", {"dcae": bf16}, {key: 200})[key].endswith("other settings")
    wider = {**config, "width": 32}
    assert budget_verdicts(study, "embedded:mnist", {"dcae": wider}, {key: 120})[key].endswith("other settings")
    assert budget_verdicts(study, "sha256:ab", {"dcae": config}, {key: 120})[key].endswith("other data")
    other = ("dcae", "leave_one_class_out")
    assert budget_verdicts(study, "embedded:mnist", {"dcae": config}, {other: 120})[other].endswith("not in the study")
    assert budget_verdicts(None, "embedded:mnist", {"dcae": config}, {key: 120})[key].endswith("no convergence study")


def test_a_curve_still_rising_at_its_cap_or_peaking_gives_no_share_of_a_plateau(tmp_path):
    config = {"width": 16, "lr": 0.001, "min_steps": 50, "epochs": 1, "threads": 0}
    study = study_folder(tmp_path, study_settings(config))
    key = ("dcae", "one_class_normal")
    rising = [(100, 0.5), (200, 0.5), (300, 0.5), (400, 0.52), (500, 0.56)]  # the mean of its last 3: 0.527
    peaking = [(100, 0.5), (200, 0.9), (300, 0.7), (400, 0.7), (500, 0.7)]  # 0.9 is twice the plateau's gain
    for points, budget, expected in [
        (
            rising,
            600,
            "600 updates; the study's curve still rose at its last evaluation (500: 0.560, above the "
            "mean of its last 3, 0.527): no plateau found to take a share of",
        ),
        (peaking, 250, "250 updates, 200 % of the plateau (0.700): the study's curve peaked near here and fell back"),
    ]:
        rows = [("dcae", "one_class_normal", c, 0, u, 1.0, 0.1, a) for c in (0, 1) for u, a in points]
        columns = ["method", "protocol", "class", "epoch", "updates", "cpu_s", "val_score", "study_auroc"]
        pd.DataFrame(rows, columns=columns).to_csv(study / "curves.csv", index=False)
        assert budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: budget})[key] == expected
    # a study of fewer classes than the run's says which it ran
    partial = budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 450}, classes=[0, 1, 2])[key]
    assert partial.endswith("; the study ran classes 0, 1 of the run's 3")
    assert (
        "the study ran" not in budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 450}, classes=[1])[key]
    )
    # a budget read a little above its plateau (noise) keeps its share
    assert budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 450})[key].startswith(
        "450 updates, 100 % of the plateau (0.700)"
    )


def test_a_plateau_that_does_not_clear_the_study_floor_is_said_so_beside_the_budget(tmp_path):
    config = {"width": 16, "lr": 0.001, "min_steps": 50, "epochs": 1, "threads": 0}
    study = study_folder(tmp_path, study_settings(config))  # both classes plateau at 0.9
    key = ("dcae", "one_class_normal")
    floors = pd.DataFrame(
        [("dcae", "one_class_normal", 0, 0.96, 0.70), ("dcae", "one_class_normal", 1, 0.90, 0.80)],
        columns=FLOOR_COLUMNS,
    )
    floors.to_csv(study / FLOORS_FILE, index=False)
    verdict = budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 200})[key]
    # the higher floor's class mean: max((0.96 + 0.90) / 2, (0.70 + 0.80) / 2) = 0.93 > the plateau's 0.9
    assert verdict == "200 updates, 100 % of the plateau (0.900); the plateau does not clear the study's floor (0.930)"
    floors.assign(floor_mean_image=[0.6, 0.7]).to_csv(study / FLOORS_FILE, index=False)  # floor 0.75: cleared
    assert budget_verdicts(study, "embedded:mnist", {"dcae": config}, {key: 200})[key].endswith("(0.900)")
    table = summarise(pd.read_csv(study / "curves.csv"), tail=1, floors=floors).set_index("class")
    assert table.loc["0", "floor_auroc"] == pytest.approx(0.96)  # a class: its own higher floor
    assert table.loc["mean", "floor_auroc"] == pytest.approx(0.93)
    assert table.loc["mean", "plateau_minus_floor"] == pytest.approx(0.9 - 0.93)
    assert "floor_auroc" not in summarise(pd.read_csv(study / "curves.csv"), tail=1).columns  # no floors recorded


def test_the_first_study_that_ran_a_method_at_the_run_settings_speaks_for_its_budget(tmp_path):
    config = {"width": 16, "lr": 0.001, "min_steps": 50, "epochs": 1, "threads": 0}
    (tmp_path / "wide").mkdir()
    (tmp_path / "mine").mkdir()
    other = study_folder(tmp_path / "wide", study_settings({**config, "width": 32}))
    mine = study_folder(tmp_path / "mine", study_settings(config))
    key = ("dcae", "one_class_normal")
    assert budget_verdicts([other, mine], "embedded:mnist", {"dcae": config}, {key: 200})[key] == (
        "200 updates, 100 % of the plateau (0.900)"
    )
    # where none matches, the nearest miss is given: a study of the method at other settings before one
    # without it (whatever their order); an empty list is no study
    assert budget_verdicts([other], "embedded:mnist", {"dcae": config}, {key: 200})[key].endswith("other settings")
    (tmp_path / "vae").mkdir()
    without = study_folder(tmp_path / "vae", study_settings(config))
    curves = pd.read_csv(without / "curves.csv").assign(method="vae")
    curves.to_csv(without / "curves.csv", index=False)
    verdict = budget_verdicts([without, other], "embedded:mnist", {"dcae": config}, {key: 200})[key]
    assert verdict == "200 updates; the study ran other settings"
    assert budget_verdicts([], "embedded:mnist", {"dcae": config}, {key: 200})[key].endswith("no convergence study")


def test_the_paper_budget_is_its_epochs_on_the_runs_splits_not_the_runs_min_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    idx = np.arange
    save_splits(
        layout.splits("mnist", "one_class_normal"),
        {
            0: {"train": idx(640), "val": idx(10), "test": idx(20)},
            1: {"train": idx(1280), "val": idx(10), "test": idx(20)},
        },
    )
    dcae = {"epochs": 1, "min_steps": 500, "batch_size": 64, "budget_scale": 0.01}  # a scaled run's settings
    for method, config in {"dcae": dcae, "kde": {}}.items():
        path = layout.method_config("mnist", method)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config))
    paper = {"dcae": {"epochs": 3, "batch_size": 32}}
    # 3 epochs of 640/32 = 20 and 1280/32 = 40 steps: 60 and 120, mean 90; the run's min_steps 500 and budget_scale
    # 0.01 are not the paper's
    assert paper_budgets("mnist", "one_class_normal", ["dcae", "kde"], paper) == {"dcae": 90.0}
    # a key the profile leaves out is the method's default (batch 64), and a method it does not name trains its
    # default epochs
    assert paper_budgets("mnist", "one_class_normal", ["dcae"], {"dcae": {"epochs": 3}}) == {"dcae": 45.0}
