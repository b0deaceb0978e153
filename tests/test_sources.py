import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from ganad.sources import DataError, RawDataset, fetch, load_embedded, load_npz, load_torchvision


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, type 0x08 = uint8, ndim), big-endian sizes, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def tiny_idx_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(30) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(10) % 10).astype(np.uint8),
    }


def test_embedded_subset_is_stratified_and_fixed():
    a, b = load_embedded("mnist"), load_embedded("mnist")
    assert a.x_train.shape == (4000, 28, 28) and a.x_test.shape == (1000, 28, 28)
    assert np.bincount(a.y_train).tolist() == [400] * 10 and np.bincount(a.y_test).tolist() == [100] * 10
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_embedded_only_for_mnist():
    with pytest.raises(DataError, match="only exists for mnist"):
        load_embedded("cifar10")


def test_torchvision_reads_an_offline_mnist_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = tiny_idx_arrays()
    for name, array in arrays.items():
        write_idx(raw / name, array)
    ds = load_torchvision("mnist", tmp_path, download=False)
    assert ds.x_train.shape == (30, 28, 28) and ds.x_test.shape == (10, 28, 28)
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_torchvision_missing_folder_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="download: true"):
        load_torchvision("mnist", tmp_path, download=False)


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server holding gzipped IDX files, as a site mirror of MNIST would."""
    served = tmp_path / "served"
    served.mkdir()
    md5 = {}
    for name, array in tiny_idx_arrays(1).items():
        write_idx(served / f"{name}.gz", array)
        md5[f"{name}.gz"] = hashlib.md5((served / f"{name}.gz").read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", md5, served
    server.shutdown()


def test_torchvision_downloads_from_mirror_with_checksums(tmp_path, mirror, monkeypatch):
    from torchvision import datasets

    url, md5, _ = mirror
    monkeypatch.setattr(datasets.MNIST, "resources", [(name, md5[name]) for name in md5])
    ds = fetch("mnist", "torchvision", cache_dir=str(tmp_path / "cache"), download=True, mirror=url)
    assert ds.x_train.shape == (30, 28, 28)
    np.testing.assert_array_equal(ds.x_train, tiny_idx_arrays(1)["train-images-idx3-ubyte"])


def test_torchvision_download_rejects_a_bad_checksum(tmp_path, mirror, monkeypatch):
    from torchvision import datasets

    url, md5, _ = mirror
    monkeypatch.setattr(datasets.MNIST, "resources", [(name, "0" * 32) for name in md5])
    with pytest.raises(DataError, match="mnist"):
        fetch("mnist", "torchvision", cache_dir=str(tmp_path / "cache"), download=True, mirror=url)


def save_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), "y_train": np.arange(20) % 10,
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "y_test": np.arange(10) % 10}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays


def test_npz_round_trip(tmp_path):
    arrays = save_npz(tmp_path / "m.npz")
    ds = load_npz("mnist", tmp_path / "m.npz")
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    assert ds.y_train.dtype == np.int64


@pytest.mark.parametrize("overrides, message", [
    ({"x_train": np.zeros((20, 28, 28), dtype=np.float32)}, "dtype float32"),
    ({"x_test": np.zeros((10, 32, 32), dtype=np.uint8)}, r"shape \(32, 32\)"),
    ({"y_train": np.arange(20) + 5}, "labels span"),
    ({"y_test": np.arange(7)}, "expected \\(10,\\)"),
])
def test_npz_bad_content_is_named(tmp_path, overrides, message):
    save_npz(tmp_path / "m.npz", **overrides)
    with pytest.raises(DataError, match=message):
        load_npz("mnist", tmp_path / "m.npz")


def test_npz_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="does not exist.*npz_path"):
        load_npz("mnist", tmp_path / "absent.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="not a readable npz"):
        load_npz("mnist", tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="lacks arrays"):
        load_npz("mnist", tmp_path / "partial.npz")


def test_unknown_dataset_and_source():
    with pytest.raises(DataError, match="unknown dataset"):
        fetch("svhn", "npz")
    with pytest.raises(DataError, match="unknown source"):
        fetch("mnist", "ftp")


def test_raw_dataset_save_is_loadable(tmp_path, tiny_mnist: RawDataset):
    tiny_mnist.save(tmp_path / "raw" / "mnist.npz")
    again = load_npz("mnist", tmp_path / "raw" / "mnist.npz")
    np.testing.assert_array_equal(again.x_test, tiny_mnist.x_test)
