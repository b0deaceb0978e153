"""Keeping a finished run under a name of its own: reports/runs/<name>/, never touched by the stages."""

import pytest

from ganad.checks import ParamsError
from ganad.keep import keep


def finished_run(root):
    (root / "reports/tables").mkdir(parents=True)
    (root / "reports/figures/mnist_one_class_normal").mkdir(parents=True)
    (root / "reports/results.md").write_text("[table](tables/mnist_one_class_normal.md)\n")
    (root / "reports/tables/mnist_one_class_normal.md").write_text("| adae | 0.7 |\n")
    (root / "reports/figures/mnist_one_class_normal/roc.png").write_bytes(b"png")
    (root / "params.yaml").write_text("seed: 0\n")


def test_a_kept_run_holds_results_params_and_the_command_and_its_links_resolve(tmp_path):
    finished_run(tmp_path)
    dest = keep("mnist_full", "dvc exp run -S profile=mnist_full", tmp_path, stale=[])
    assert dest == tmp_path / "reports/runs/mnist_full"
    assert (dest / "params.yaml").read_text() == "seed: 0\n"
    assert "dvc exp run -S profile=mnist_full" in (dest / "RUN.md").read_text()
    assert (dest / "tables/mnist_one_class_normal.md").is_file()  # the page's relative link, inside the folder
    assert (dest / "figures/mnist_one_class_normal/roc.png").read_bytes() == b"png"
    # keeping again replaces the run as a whole: nothing of the old one lingers
    (dest / "tables/old.md").write_text("old")
    keep("mnist_full", "again", tmp_path, stale=[])
    assert not (dest / "tables/old.md").exists() and "again" in (dest / "RUN.md").read_text()


def test_a_stale_run_an_unfinished_one_or_a_bad_name_is_refused(tmp_path):
    finished_run(tmp_path)
    with pytest.raises(ParamsError, match="not up to date.*train@mnist"):
        keep("mnist_full", "cmd", tmp_path, stale=["train@mnist-one_class_normal-adae"])
    with pytest.raises(ParamsError, match="run name '../x' is invalid"):
        keep("../x", "cmd", tmp_path, stale=[])
    (tmp_path / "reports/results.md").unlink()
    with pytest.raises(ParamsError, match="results.md' not found"):
        keep("mnist_full", "cmd", tmp_path, stale=[])
    assert not (tmp_path / "reports/runs/mnist_full").exists()
