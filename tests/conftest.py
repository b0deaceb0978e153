"""Shared fixtures: small synthetic datasets, never the real ones; running stage scripts."""

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from ganad.data.images import ImageSet
from ganad.data.sources import RawDataset

ROOT = Path(__file__).resolve().parents[1]


def stage(name):
    """A stage script's click command, loaded from stages/<name>.py."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def invoke(name, *args):
    """Run a stage script with `args`; it must succeed. Its output."""
    from click.testing import CliRunner

    result = CliRunner().invoke(stage(name), list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


torch.set_num_threads(1)  # tiny tensors: more threads only add synchronisation


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one torch thread and leaves the count as it found it: on the shared 2-core
    machine a second thread made tiny fits several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blob_images(n: int, rng: np.random.Generator, anomalous: bool = False) -> np.ndarray:
    """28x28 uint8 digits-like images: normal ones are a bright disc, anomalous ones a bright bar."""
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(11, 17, size=2)
        if anomalous:
            mask = (np.abs(xx - cx) < 2) & (np.abs(yy - cy) < 11)
        else:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(25, 40)
        out[i][mask] = 255
    return out


def make_tiny_mnist(n_train: int = 600, n_test: int = 200) -> RawDataset:
    """MNIST-shaped images: class 0 discs, classes 1-9 bars, labels balanced."""
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 10
        x = np.where((y == 0)[:, None, None], blob_images(n, rng), blob_images(n, rng, anomalous=True))
        return x.astype(np.uint8), y.astype(np.int64)

    return RawDataset("mnist", *part(n_train), *part(n_test)).validate()


@pytest.fixture
def tiny_mnist() -> RawDataset:
    """600 train / 200 test MNIST-shaped images (`make_tiny_mnist`)."""
    return make_tiny_mnist()


def easy_sets(n_train=256, n_test=128, seed=0):
    """Train on discs only; test on half discs (normal, 0) and half bars (anomalous, 1), in [-1, 1]."""
    rng = np.random.default_rng(seed)

    def to_set(x, labels):
        x32 = np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None]
        return ImageSet(torch.from_numpy(x32.astype(np.float32) / 127.5 - 1), labels, np.arange(len(x)))

    train = to_set(blob_images(n_train, rng), np.zeros(n_train, dtype=np.int64))
    val = to_set(blob_images(n_train // 4, rng), np.zeros(n_train // 4, dtype=np.int64))
    half = n_test // 2
    test_x = np.concatenate([blob_images(half, rng), blob_images(half, rng, anomalous=True)])
    test = to_set(test_x, np.repeat([0, 1], half))
    return train, val, test


@pytest.fixture
def easy():
    return easy_sets()


def smooth_blobs(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Smooth bright blobs near the centre of a dark 32x32 image, in [-1, 1]."""
    yy, xx = np.mgrid[:32, :32]
    c = rng.uniform(14.5, 17.5, size=(n, 2))
    sigma = rng.uniform(3.5, 4.5, size=(n, 1, 1))
    img = 2 * np.exp(-((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2) / (2 * sigma**2)) - 1
    return torch.from_numpy(img[:, None].astype(np.float32))


def inverted_blob_sets(n_train=256, n_test=64, seed=0):
    """Normal: blobs. Anomalous: the same blobs inverted (bright background); what every method of the
    registry must separate after a short training (tests/test_methods.py)."""
    rng = np.random.default_rng(seed)

    def image_set(x, labels):
        return ImageSet(x, np.asarray(labels, dtype=np.int64), np.arange(len(x)))

    train = image_set(smooth_blobs(n_train, rng), [0] * n_train)
    val = image_set(smooth_blobs(n_train // 4, rng), [0] * (n_train // 4))
    test = image_set(torch.cat([smooth_blobs(n_test, rng), -smooth_blobs(n_test, rng)]), [0] * n_test + [1] * n_test)
    return train, val, test


# --- small brain volumes in the real HCP and BraTS layouts (tests/test_brain_*.py) ---

SHAPE = (24, 20, 16)  # x, y, z: not square in-plane, so padding to a square is exercised
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # how BraTS files are stored
HCP_AFFINE = np.diag([-0.7, 0.7, 0.7, 1.0])  # LAS at 0.7 mm
BRATS_2017 = ("t1", "t1ce", "t2", "flair", "seg")
BRATS_2023 = ("t1n", "t1c", "t2w", "t2f", "seg")


def head(seed=0, shape=SHAPE) -> np.ndarray:
    """A skull-stripped 'brain': an ellipsoid of positive intensities in a zero background, empty top and bottom."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.8) ** 2 < 1
    return np.where(inside, rng.uniform(100, 300, shape), 0).astype(np.float32)


def lesion(shape=SHAPE, z=(6, 9)) -> np.ndarray:
    """Labels 1, 2, 4 (BraTS 2017) in a block of axial slices z[0]..z[1]-1."""
    seg = np.zeros(shape, dtype=np.int16)
    seg[8:14, 7:12, z[0] : z[1]] = 2
    seg[10:12, 9:11, z[0] : z[1]] = 1
    seg[9, 8, z[0] : z[1]] = 4
    return seg


def save(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def brats_case(folder, seed=0, keys=BRATS_2017, sep="_", ext=".nii.gz", seg=None, affine=LPS):
    """A case folder `<folder>/<name><sep><key><ext>`, stored as BraTS stores it (LPS: both in-plane axes flipped)."""
    image = head(seed)
    labels = lesion() if seg is None else seg
    for key in keys:
        data = labels if key == "seg" else image
        stored = data[::-1, ::-1] if affine is LPS else data
        save(folder / f"{folder.name}{sep}{key}{ext}", np.ascontiguousarray(stored), affine)
    return folder


def hcp_subject(root, name, seed=0, modalities=("T1w", "T2w")):
    for modality in modalities:
        save(root / name / "T1w" / f"{modality}_acpc_dc_restore_brain.nii.gz", head(seed + 100), HCP_AFFINE)


def make_workspace(path: Path) -> Path:
    """A scratch folder with the repository's params.yaml cut to the tiny MNIST archive, classes 0 and 3, dcae
    alone (width 8, 2 epochs), serial jobs: the stage scripts run in it (`invoke`) once it is the working folder."""
    make_tiny_mnist().save(path / "tiny.npz")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["run"].update(classes=[0, 3], methods=["dcae"], seeds=[0], audit_protocols=[])
    params["executor"] = {"kind": "serial"}
    params["brain"]["methods"] = ["dcae"]
    params["data"]["mnist"] = {"source": "npz", "npz_path": str(path / "tiny.npz"), "download": False}
    params["model"]["method"] = "dcae"
    params["methods"]["dcae"] = {"latent_dim": "auto", "width": 8, "epochs": 2, "batch_size": 32, "lr": 0.002}
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """`make_workspace` in tmp_path, the working folder for the test."""
    monkeypatch.chdir(make_workspace(tmp_path))
    return tmp_path


def prepare_data(*protocols):
    invoke("fetch", "--dataset", "mnist")
    for protocol in protocols:
        invoke("split", "--dataset", "mnist", "--protocol", protocol)
    invoke("preprocess", "--dataset", "mnist")
    invoke("configure", "--dataset", "mnist")
