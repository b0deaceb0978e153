"""The stage scripts end to end on a tiny synthetic dataset, in a scratch folder."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from ganad.evaluation.convergence import data_identity, study_settings
from ganad.evaluation.floors import FLOORS
from ganad.evaluation.metrics import OPERATING_COLUMNS

from conftest import ROOT, invoke, prepare_data, stage


def test_stages_chain_from_data_to_tables(workspace):
    """Two training seeds and the leak audit, from the data to the tables and the results page."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"].update(seeds=[0, 1], audit_protocols=["leave_one_class_out_leaky"])
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    invoke("fetch", "--dataset", "mnist")
    for protocol in ("leave_one_class_out", "one_class_normal", "leave_one_class_out_leaky"):
        invoke("split", "--dataset", "mnist", "--protocol", protocol)
    invoke("preprocess", "--dataset", "mnist")
    invoke("configure", "--dataset", "mnist")
    images = np.load(workspace / "data/prepared/mnist/images.npy", mmap_mode="r")
    assert images.shape == (800, 1, 32, 32) and images.dtype == np.uint8

    for protocol in ("leave_one_class_out", "one_class_normal"):
        invoke("train_score", "--dataset", "mnist", "--protocol", protocol, "--method", "dcae")
    invoke("score", "--dataset", "mnist", "--protocol", "leave_one_class_out_leaky", "--method", "dcae")
    for protocol in ("leave_one_class_out", "one_class_normal", "leave_one_class_out_leaky"):
        invoke("evaluate", "--dataset", "mnist", "--protocol", protocol)
    invoke("figures", "--dataset", "mnist", "--protocol", "one_class_normal")
    # a convergence study of dcae on this very data and these settings, whose curve reaches 90 % of its plateau
    # (0.9) only at 10,000 updates: the page marks the run's budget under-trained
    study = workspace / "reports/convergence/tiny"
    study.mkdir(parents=True)
    settings = study_settings(json.loads((workspace / "data/config/mnist/dcae.json").read_text()))
    identity = data_identity("npz", "mnist", workspace / "tiny.npz")
    (study / "study.json").write_text(json.dumps({"data": identity, "settings": {"dcae": settings}}))
    pd.DataFrame(
        [
            ("dcae", "one_class_normal", 0, 0, u, 1.0, 0.1, a)
            for u, a in [(1, 0.56), (10000, 0.9), (20000, 0.9), (30000, 0.9)]
        ],
        columns=["method", "protocol", "class", "epoch", "updates", "cpu_s", "val_score", "study_auroc"],
    ).to_csv(study / "curves.csv", index=False)
    params["report"]["convergence_study"] = "reports/convergence/tiny"
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    invoke("report")

    scores = pd.read_csv(workspace / "data/scores/mnist/leave_one_class_out/dcae.csv")
    # leave-one-class-out test: 20 % of the 720 normal images plus all 80 anomalies, per class and seed
    assert scores.groupby(["seed", "class"]).size().tolist() == [144 + 80] * 4
    assert (scores["anomalous"] == (scores["label"] == scores["class"])).all()
    assert (scores["p_value"] > 0).all() and (scores["p_value"] <= 1).all()  # conformal, from validation scores
    # a seed change moves training, not the splits: the seeds score the same images, with other models
    by_seed = {seed: group.drop(columns="seed").reset_index(drop=True) for seed, group in scores.groupby("seed")}
    assert by_seed[0][["class", "index"]].equals(by_seed[1][["class", "index"]])
    assert not np.allclose(by_seed[0]["score"], by_seed[1]["score"])
    models = workspace / "models/mnist/leave_one_class_out/dcae"
    assert (models / "seed0/class3.safetensors").read_bytes() != (models / "seed1/class3.safetensors").read_bytes()

    metrics = json.loads((workspace / "reports/metrics/mnist_one_class_normal.json").read_text())
    assert metrics["seeds"] == 2 and set(metrics["dcae"]) == {"auroc", "auroc_std", *OPERATING_COLUMNS}
    # the floors beside the method: one seed, the same classes and test images
    assert list(metrics)[-2:] == ["floor_mean_image", "floor_intensity"]
    every = pd.read_csv(workspace / "reports/metrics/classes/mnist_one_class_normal.csv")
    floors = every[every["method"].str.startswith("floor_")]
    assert len(floors) == 4 and set(floors["seed"]) == {0} and set(floors["class"]) == {0, 3}
    detail = every[every["method"] == "dcae"]
    assert (
        len(detail) == 4
        and (detail["auroc_low"] <= detail["auroc"]).all()
        and (detail["auroc"] <= detail["auroc_high"]).all()
    )
    assert metrics["dcae"]["auroc"] == pytest.approx(detail.groupby("seed")["auroc"].mean().mean(), abs=1e-4)
    table = (workspace / "reports/tables/mnist_one_class_normal.md").read_text()
    assert "dcae" in table and "not yet run" in table and "ours - paper" in table and " ± " in table
    curves = pd.read_csv(workspace / "reports/curves/mnist_one_class_normal_dcae.csv")
    assert set(curves["class"]) == {0, 3} and set(curves["seed"]) == {0, 1} and "train_loss" in set(curves["metric"])
    assert (
        workspace / "reports/training/mnist/one_class_normal/dcae/seed1/class3/plots/metrics/train_loss.tsv"
    ).exists()

    page = (workspace / "reports/results.md").read_text()
    # dcae trains 2 epochs of batches of 32 on each class's training split: the budget, placed on the study's curve
    splits = np.load(workspace / "data/splits/mnist/one_class_normal.npz")
    budget = np.mean([2 * -(-len(splits[f"train_{c}"]) // 32) for c in (0, 3)])
    assert f"under-trained: {budget:.0f} updates, 15 % of the plateau (0.900); 90 % at 10000" in page
    assert "the study ran on other data" not in page.split("## mnist, one-class-normal")[1].split("## ")[0]
    assert "| floor_mean_image " in page and "a floor: learns nothing" in page
    assert "false alarms at α = 0.05" in page and "detection at 5 % false alarms" in page
    assert any(v in page for v in ("(clears the floor)", "(does not clear the floor)", "(below the floor)"))
    assert "## mnist: the leak audit" in page and "## mnist, one-class-normal" in page
    from ganad.evaluation.tables import split_leak  # the page states the overlap the split files hold

    assert f"({split_leak('mnist', 'leave_one_class_out_leaky'):.1%} trained on)" in page
    assert "(0.0% of the test normals were trained on" in page
    assert "figures/mnist_one_class_normal/mnist_one_class_normal_mean_roc.png" in page
    assert (
        f"- mnist: 600 training-pool and 200 test images (1 channel, 32x32, 10 classes) from the npz archive "
        f"`{workspace / 'tiny.npz'}`." in page
    )
    leaky = pd.read_csv(workspace / "data/scores/mnist/leave_one_class_out_leaky/dcae.csv")
    assert set(leaky["seed"]) == {0, 1} and not leaky["index"].equals(scores["index"])


def test_train_resumes_from_finished_checkpoints(workspace):
    prepare_data("one_class_normal")
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    model = workspace / "models/mnist/one_class_normal/dcae/seed0/class0.safetensors"
    first = model.read_bytes()
    model.unlink()  # as DVC does to outputs before a re-run
    output = invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    assert "0/2" not in output  # no epoch ran again
    assert model.read_bytes() == first


def test_a_training_code_change_starts_over_instead_of_resuming(workspace, monkeypatch):
    """A finished checkpoint is resumed only by the code that wrote it: after a change to the method's
    code, `dvc repro` reruns the stage and the stage must train again."""
    import ganad.engine.jobs

    prepare_data("one_class_normal")
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    monkeypatch.setattr(ganad.engine.jobs, "code_version", lambda *modules: "other code")
    (workspace / "models/mnist/one_class_normal/dcae/seed0/class0.safetensors").unlink()
    output = invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    assert "0/2" in output  # trained from the first epoch


def test_bad_params_stop_before_any_work(workspace):
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["model"]["latent_dim"] = -3
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(stage("fetch"), ["--dataset", "mnist"])
    assert result.exit_code != 0 and "model.latent_dim = -3" in str(result.exception)
    assert not (workspace / "data").exists()


def test_a_method_that_cannot_run_is_reported_as_not_run(workspace, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(workspace / "empty_torch_home"))
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["run"]["methods"] = ["dcae", "kde_alexnet"]
    params["methods"]["kde_alexnet"] = {"download": False, "weights_dir": str(workspace / "no_weights")}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    prepare_data("one_class_normal")
    output = invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "kde_alexnet")
    assert "kde_alexnet skipped" in output and "download" in output
    curves = workspace / "reports/training/mnist/one_class_normal/kde_alexnet"
    assert "download" in (curves / "UNAVAILABLE.txt").read_text()  # the stage's plots output exists
    invoke("train_score", "--dataset", "mnist", "--protocol", "one_class_normal", "--method", "dcae")
    params["run"]["protocols"] = ["one_class_normal"]
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    invoke("evaluate", "--dataset", "mnist", "--protocol", "one_class_normal")
    metrics = json.loads((workspace / "reports/metrics/mnist_one_class_normal.json").read_text())
    assert "weights" in metrics["kde_alexnet"]["unavailable"] and "auroc" in metrics["dcae"]
    invoke("report")
    table = (workspace / "reports/tables/mnist_one_class_normal.md").read_text()
    assert "kde_alexnet was not run" in table
    row = [line for line in table.splitlines() if line.startswith("| kde_alexnet") and "ours" in line]
    assert row and "not yet run" in row[0]


def test_a_race_on_dvclives_shared_signal_file_loses_nothing(tmp_path, monkeypatch):
    """Two worker processes ending their dvclive runs at once race on one signal file (dvclive checks it
    exists, then deletes it); the loser's FileNotFoundError must not fail a finished class."""
    import dvclive.live

    from ganad.methods.common.training_run import TrainingRun

    def lost_race():
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "DVCLIVE_STEP_COMPLETED"))

    monkeypatch.setattr(dvclive.live, "cleanup_dvclive_step_completed", lost_race)
    with TrainingRun(None, "fp", tmp_path / "curves") as run:
        run._open_live()
        run._log({"epoch": 0, "loss": 1.0})
    assert (tmp_path / "curves" / "metrics.json").is_file()

    monkeypatch.setattr(dvclive.live, "cleanup_dvclive_step_completed", lambda: (tmp_path / "missing").read_text())
    with pytest.raises(FileNotFoundError), TrainingRun(None, "fp", tmp_path / "other") as run:
        run._open_live()


def test_a_folder_dataset_declared_in_params_runs_every_method_to_tables(tmp_path, monkeypatch):
    """A new dataset is configuration: class subfolders of PNGs of any size, grey and colour mixed (so the
    dataset is colour), declared under data.<name>, go through every method of the registry and both
    protocols to metrics, figures and tables."""
    from PIL import Image

    from ganad.methods import REGISTRY

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:36, :36]
    for k, name in enumerate(["disc", "ring", "bar"]):  # three shapes, one class each
        for i in range(16):
            cy, cx = rng.uniform(14, 22, size=2)
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            mask = [r2 < 40, (r2 > 30) & (r2 < 60), np.abs(xx - cx) < 3][k]
            image = np.where(mask, 230, 20).astype(np.uint8)
            image = np.stack([image, image[::-1], image.T], axis=-1) if i % 2 else image[2:, :30]  # grey 34x30
            (tmp_path / "shapes" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "shapes" / name / f"{i:02d}.png")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "conf/profile/smoke.yaml").read_text())["methods"]
    params["run"].update(datasets=["shapes"], methods=sorted(REGISTRY), classes=[0, 2], seeds=[0], audit_protocols=[])
    params["data"]["shapes"] = {"source": "folder", "root": str(tmp_path / "shapes"), "test_fraction": 0.25}
    params["split"]["test_size"] = 12
    for method, section in smoke.items():
        params["methods"][method] = {**params["methods"].get(method, {}), **section}
    for method in ("kde", "gmm", "igmm_gan", "kde_alexnet", "ocsvm"):
        params["methods"].setdefault(method, {})["max_train"] = 32
    params["methods"]["gmm"]["components"] = [1, 2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))  # the AlexNet methods: not run, offline

    assert "3 classes (bar, disc, ring)" in invoke("fetch", "--dataset", "shapes")
    invoke("preprocess", "--dataset", "shapes")
    invoke("configure", "--dataset", "shapes")
    assert np.load(tmp_path / "data/prepared/shapes/images.npy").shape == (48, 3, 32, 32)
    assert json.loads((tmp_path / "data/config/shapes/dcae.json").read_text())["latent_dim"] == 128  # colour
    for protocol in ("leave_one_class_out", "one_class_normal"):
        invoke("split", "--dataset", "shapes", "--protocol", protocol)
        for method in sorted(REGISTRY):
            invoke("train_score", "--dataset", "shapes", "--protocol", protocol, "--method", method)
        invoke("evaluate", "--dataset", "shapes", "--protocol", protocol)
        invoke("figures", "--dataset", "shapes", "--protocol", protocol)
    invoke("report")
    for protocol in ("leave_one_class_out", "one_class_normal"):
        metrics = json.loads((tmp_path / f"reports/metrics/shapes_{protocol}.json").read_text())
        ran = {m for m, r in metrics.items() if isinstance(r, dict) and "auroc" in r}
        assert ran == set(REGISTRY) - {"kde_alexnet", "ocsvm_alexnet"} | set(FLOORS)
        detail = pd.read_csv(tmp_path / f"reports/metrics/classes/shapes_{protocol}.csv")
        assert set(detail["method"]) == ran and set(detail["class"]) == {0, 2}
        table = (tmp_path / f"reports/tables/shapes_{protocol}.md").read_text()
        header = next(line for line in table.splitlines() if line.startswith("| method"))
        assert [c.strip() for c in header.split("|")[3:5]] == [
            "bar",
            "ring",
        ] and "papers report no shapes results" in table
        assert (tmp_path / f"reports/figures/shapes_{protocol}/shapes_{protocol}_mean_roc.png").is_file()
        # curves carry the job's training seed, not a method's own (a subsample's) seed
        for method in ran - set(FLOORS):
            curves = pd.read_csv(tmp_path / f"reports/curves/shapes_{protocol}_{method}.csv")
            assert set(curves["seed"]) == {0} and set(curves["class"]) == {0, 2}, method
