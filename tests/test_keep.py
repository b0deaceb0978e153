"""Keeping a finished run under a name of its own: reports/runs/<name>/, never touched by the stages."""

import json
from pathlib import Path

import pytest

from ganad.errors import ParamsError
from ganad.runtime.keep import keep, kept_output


def finished_run(root):
    (root / "reports/tables").mkdir(parents=True)
    (root / "reports/figures/mnist_one_class_normal").mkdir(parents=True)
    (root / "reports/results.md").write_text("# results\n\n[table](tables/mnist_one_class_normal.md)\n")
    (root / "reports/tables/mnist_one_class_normal.md").write_text("| adae | 0.7 |\n")
    (root / "reports/figures/mnist_one_class_normal/roc.png").write_bytes(b"png")
    (root / "params.yaml").write_text("seed: 0\n")
    (root / "data/config/mnist").mkdir(parents=True)
    (root / "data/config/mnist/dcae.json").write_text('{"epochs": 2}')


OUTPUTS = [
    Path("reports/results.md"),
    Path("reports/tables"),
    Path("reports/figures/mnist_one_class_normal"),
    Path("data/config/mnist"),
]


def test_kept_outputs_are_the_reports_and_the_small_files_the_report_reads():
    assert kept_output(Path("reports/tables")) and kept_output(Path("reports/metrics/classes/x.csv"))
    assert not kept_output(Path("reports/runs/x")) and not kept_output(Path("reports/training/mnist"))
    assert kept_output(Path("data/config/mnist")) and kept_output(Path("data/scores/mnist/p/dcae.selected.json"))
    assert not kept_output(Path("data/scores/mnist/p/dcae.csv")) and not kept_output(Path("models/mnist"))


def test_a_kept_run_holds_results_params_and_the_command_and_its_links_resolve(tmp_path):
    finished_run(tmp_path)
    (tmp_path / "reports/figures/cifar10_one_class_normal").mkdir()  # an earlier run's, not this one's output
    (tmp_path / "reports/figures/cifar10_one_class_normal/roc.png").write_bytes(b"old")
    dest = keep("mnist_full", "dvc exp run -S profile=mnist_full", tmp_path, stale=[], outputs=OUTPUTS)
    assert not (dest / "figures/cifar10_one_class_normal").exists()
    assert dest == tmp_path / "reports/runs/mnist_full"
    assert (dest / "params.yaml").read_text() == "seed: 0\n"
    assert "dvc exp run -S profile=mnist_full" in (dest / "RUN.md").read_text()
    assert (dest / "tables/mnist_one_class_normal.md").is_file()  # the page's relative link, inside the folder
    assert (dest / "figures/mnist_one_class_normal/roc.png").read_bytes() == b"png"
    assert (dest / "data/config/mnist/dcae.json").read_text() == '{"epochs": 2}'  # as in the workspace
    record = json.loads((dest / "kept.json").read_text())
    assert record["name"] == "mnist_full" and record["command"] == "dvc exp run -S profile=mnist_full"
    # keeping again replaces the run as a whole: nothing of the old one lingers
    (dest / "tables/old.md").write_text("old")
    keep("mnist_full", "again", tmp_path, stale=[], notes=("pixels went through JPEG",), outputs=OUTPUTS)
    run_page = (dest / "RUN.md").read_text()
    assert not (dest / "tables/old.md").exists() and "again" in run_page
    assert "## About this run\n\n- pixels went through JPEG\n" in run_page
    page = (dest / "results.md").read_text()
    assert page.startswith("# results\n\nKept run `mnist_full`") and "- pixels went through JPEG\n" in page
    assert page.endswith("[table](tables/mnist_one_class_normal.md)\n")
    assert (
        "About this run" not in keep("mnist_full", "cmd", tmp_path, [], outputs=OUTPUTS).joinpath("RUN.md").read_text()
    )


def test_a_stale_run_an_unfinished_one_or_a_bad_name_is_refused(tmp_path):
    finished_run(tmp_path)
    with pytest.raises(ParamsError, match="not up to date.*train_score@mnist"):
        keep("mnist_full", "cmd", tmp_path, stale=["train_score@mnist-one_class_normal-adae"])
    with pytest.raises(ParamsError, match="run name '../x' is invalid"):
        keep("../x", "cmd", tmp_path, stale=[])
    (tmp_path / "reports/results.md").unlink()
    with pytest.raises(ParamsError, match="results.md' not found"):
        keep("mnist_full", "cmd", tmp_path, stale=[])
    assert not (tmp_path / "reports/runs/mnist_full").exists()


def test_the_run_s_own_outputs_do_not_mark_the_commit_dirty_but_a_code_change_does(tmp_path):
    """`dvc exp run` rewrites params.yaml, dvc.lock and reports/: RUN.md names the commit as it is; an edited
    tracked file elsewhere (code, conf/) is a change the commit does not hold, and RUN.md says so."""
    import subprocess

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True, capture_output=True
        )

    finished_run(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    (tmp_path / "stage.py").write_text("print(1)\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "run")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (tmp_path / "reports/results.md").write_text("new numbers\n")
    assert "uncommitted" not in (keep("a", "cmd", tmp_path, stale=[], outputs=OUTPUTS) / "RUN.md").read_text()
    (tmp_path / "stage.py").write_text("print(2)\n")
    assert (
        "(with uncommitted changes)" in (keep("a", "cmd", tmp_path, stale=[], outputs=OUTPUTS) / "RUN.md").read_text()
    )


def test_the_kept_outputs_are_those_of_the_stages_the_pipeline_defines(tmp_path):
    import subprocess
    import sys

    from ganad.runtime.keep import report_outputs

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  evaluate:\n    foreach: [mnist]\n    do:\n      cmd: echo\n"
        "      outs:\n        - reports/metrics/${item}.json\n        - data/scores/${item}.csv\n"
        "  report:\n    cmd: echo\n    outs:\n      - reports/results.md\n"
        "      - reports/tables:\n          cache: false\n"
        "  train:\n    cmd: echo\n    outs:\n      - reports/training/mnist\n"
    )
    assert report_outputs(tmp_path) == [
        Path("reports/metrics/mnist.json"),
        Path("reports/results.md"),
        Path("reports/tables"),
    ]


def test_links_to_what_is_not_kept_are_rewritten_to_reach_it_from_the_kept_folder(tmp_path):
    finished_run(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/decisions.md").write_text("# decisions\n")
    (tmp_path / "reports/convergence/mnist").mkdir(parents=True)
    (tmp_path / "reports/convergence/mnist/README.md").write_text("# study\n")
    (tmp_path / "reports/results.md").write_text(
        "[d](../docs/decisions.md#guarantee) [s](convergence/mnist/README.md) [t](tables/mnist_one_class_normal.md)"
        " [w](https://example.org/x.md) [gone](../docs/absent.md) [a](#mnist)\n"
    )
    (tmp_path / "reports/tables/mnist_one_class_normal.md").write_text("[up](../../docs/decisions.md)\n")
    dest = keep("mnist_full", "cmd", tmp_path, stale=[], outputs=OUTPUTS)
    page = (dest / "results.md").read_text()
    assert page == (
        "[d](../../../docs/decisions.md#guarantee) [s](../../convergence/mnist/README.md) "
        "[t](tables/mnist_one_class_normal.md) [w](https://example.org/x.md) [gone](../docs/absent.md) [a](#mnist)\n"
    )
    assert (dest / "tables/mnist_one_class_normal.md").read_text() == "[up](../../../../docs/decisions.md)\n"
    for link in ("../../../docs/decisions.md", "../../convergence/mnist/README.md"):
        assert (dest / link).resolve().is_file()
