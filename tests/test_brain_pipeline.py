"""The brain study's stages end to end: volumes in the HCP and BraTS layouts, every method of the registry,
slice-wise metrics, Fig. 3 and Fig. 4, in a scratch folder."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ganad.methods import REGISTRY

from conftest import ROOT, brats_case, hcp_subject, invoke

pytestmark = pytest.mark.filterwarnings("ignore:.*BraTS volumes are:UserWarning")
BRAIN = ("--dataset", "brain", "--protocol", "healthy_to_tumour")


@pytest.fixture
def brain_workspace(tmp_path, monkeypatch):
    for i in range(4):
        hcp_subject(tmp_path / "hcp", f"10{i}307", seed=i)
    for i, grade in enumerate(("HGG", "HGG", "LGG")):
        brats_case(tmp_path / "brats" / grade / f"Brats17_TEST_{i}_1", seed=10 + i)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "conf/profile/smoke.yaml").read_text())["methods"]
    params["brain"].update(
        hcp_root=str(tmp_path / "hcp"), brats_root=str(tmp_path / "brats"), val_fraction=0.25, methods=sorted(REGISTRY)
    )
    # the image datasets' figure class need not be a brain class (the brain data has one): its figures show class 0
    params["run"].update(methods=sorted(REGISTRY), classes=[1])
    params["report"]["figure_class"] = 1
    params["executor"] = {"kind": "serial"}
    for method, section in smoke.items():
        params["methods"][method] = {**params["methods"].get(method, {}), **section}
    for method in ("kde", "gmm", "igmm_gan", "ocsvm"):
        params["methods"].setdefault(method, {})["max_train"] = 32
    params["methods"]["gmm"]["components"] = [1, 2]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_torch_home"))  # the AlexNet methods: not run, offline
    return tmp_path


def test_every_method_runs_on_the_brain_data_to_slice_wise_results_and_figures(brain_workspace):
    root = brain_workspace
    invoke("brain_prepare")
    invoke("configure", "--dataset", "brain")
    assert json.loads((root / "data/config/brain/adae.json").read_text())["latent_dim"] == 128  # ADAE Appendix A
    assert np.load(root / "data/prepared/brain/images.npy").dtype == np.float16
    for method in sorted(REGISTRY):
        invoke("train_score", *BRAIN, "--method", method)
    invoke("evaluate", *BRAIN)
    invoke("figures", *BRAIN)
    invoke("brain_report", "--bootstrap", "100")

    scores = pd.read_csv(root / "data/scores/brain/healthy_to_tumour/adae.csv")
    slices = pd.read_csv(root / "data/prepared/brain/slices.csv")
    assert set(scores["index"]) == set(slices.loc[slices["source"] == "brats", "index"])  # every BraTS slice tests
    assert (scores["anomalous"] == scores["label"]).all() and scores["anomalous"].nunique() == 2
    metrics = json.loads((root / "reports/brain/metrics.json").read_text())
    ran = {m for m, r in metrics.items() if "auroc" in r}
    assert ran == set(REGISTRY) - {"kde_alexnet", "ocsvm_alexnet"} | {"slice_size_reference"}
    assert all(0 <= metrics[m]["auroc"] <= 1 and {"auroc_HGG", "auroc_LGG"} <= set(metrics[m]) for m in ran)
    # flagged at alpha from the healthy validation subjects' p-values, per grade too
    assert {"far_at_alpha", "detection_at_alpha_HGG", "detection_at_alpha_LGG"} <= set(metrics["adae"])
    results = (root / "reports/brain/results.md").read_text()
    assert "0.892" in results and "kde_alexnet" in results
    figures = root / "reports/figures/brain_healthy_to_tumour"
    for name in ("adae_reconstructions", "adae_histogram"):  # ADAE Fig. 4a and 4b
        assert (figures / f"brain_healthy_to_tumour_{name}.png").stat().st_size > 1000
    assert (root / "reports/brain/fig3_auroc.png").stat().st_size > 1000
