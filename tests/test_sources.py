import functools
import gc
import gzip
import hashlib
import http.server
import threading
import warnings

import numpy as np
import pytest

from ganad.config.params import DatasetParams
from ganad.data.idx_cache import write_cache
from ganad.data.sources import RawDataset, fetch, load_embedded, load_folder, load_npz, load_torchvision
from ganad.errors import DataError


def declared(**fields) -> DatasetParams:
    return DatasetParams(**fields)


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


def test_an_npz_laid_out_as_torchvisions_cache_reads_back_identically_offline(tmp_path):
    arrays = tiny_idx_arrays(seed=3)
    npz = tmp_path / "mnist.npz"
    keys = ["x_train", "y_train", "x_test", "y_test"]
    np.savez(npz, **dict(zip(keys, arrays.values())))
    written = write_cache(npz, tmp_path / "cache")
    assert [p.name for p in written] == list(arrays)
    # byte for byte what an independent IDX writer gives, and what torchvision reads without downloading
    for path, array in zip(written, arrays.values()):
        write_idx(tmp_path / "reference", array)
        assert path.read_bytes() == (tmp_path / "reference").read_bytes()
    ds = load_torchvision("mnist", tmp_path / "cache", download=False)
    for key, array in zip(keys, arrays.values()):
        np.testing.assert_array_equal(getattr(ds, key), array)
    np.savez(npz, x_train=arrays["train-images-idx3-ubyte"])
    with pytest.raises(DataError, match=r"lacks \['x_test', 'y_test', 'y_train'\]"):
        write_cache(npz, tmp_path / "other")


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
    ds = fetch("mnist", declared(source="torchvision", download=True, mirror=url), cache_dir=str(tmp_path / "cache"))
    assert ds.x_train.shape == (30, 28, 28)
    np.testing.assert_array_equal(ds.x_train, tiny_idx_arrays(1)["train-images-idx3-ubyte"])


def test_torchvision_download_rejects_a_bad_checksum(tmp_path, mirror, monkeypatch):
    from torchvision import datasets

    url, md5, _ = mirror
    monkeypatch.setattr(datasets.MNIST, "resources", [(name, "0" * 32) for name in md5])
    with pytest.raises(DataError, match="mnist"):
        fetch("mnist", declared(source="torchvision", download=True, mirror=url), cache_dir=str(tmp_path / "cache"))


def save_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": np.arange(10) % 10,
    }
    arrays.update(overrides)
    np.savez(path, **arrays)
    return arrays


def test_npz_round_trip(tmp_path):
    arrays = save_npz(tmp_path / "m.npz")
    ds = load_npz("mnist", tmp_path / "m.npz")
    np.testing.assert_array_equal(ds.x_train, arrays["x_train"])
    assert ds.y_train.dtype == np.int64


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"x_train": np.zeros((20, 28, 28), dtype=np.float32)}, "dtype float32"),
        ({"x_test": np.zeros((10, 32, 32), dtype=np.uint8)}, r"shape \(32, 32\)"),
        ({"y_train": np.arange(20) + 5}, "labels span"),
        ({"y_test": np.arange(7)}, "expected \\(10,\\)"),
    ],
)
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


def test_an_npz_that_is_no_zip_leaves_no_file_open(tmp_path):
    """np.load leaves the handle of a file with a zip's signature but no zip behind it to the garbage
    collector; load_npz closes it itself."""
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="not a readable npz"):
            load_npz("mnist", tmp_path / "bad.npz")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_unknown_torchvision_dataset_and_source():
    with pytest.raises(DataError, match="torchvision.datasets has no dataset 'nosuchset'.*data.nosuchset.torchvision"):
        fetch("nosuchset", declared(source="torchvision"))
    with pytest.raises(DataError, match="unknown source"):
        fetch("mnist", DatasetParams.model_construct(source="ftp"))  # params refuse it; fetch does too


def test_raw_dataset_save_is_loadable(tmp_path, tiny_mnist: RawDataset):
    tiny_mnist.save(tmp_path / "raw" / "mnist.npz")
    again = load_npz("mnist", tmp_path / "raw" / "mnist.npz")
    np.testing.assert_array_equal(again.x_test, tiny_mnist.x_test)


def test_torchvision_reads_another_dataset_by_name_from_tiny_local_files(tmp_path):
    """KMNIST (MNIST's file layout under its own folder) found by the dataset's name, with its class names."""
    raw = tmp_path / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = tiny_idx_arrays(2)
    for name, array in arrays.items():
        write_idx(raw / name, array)
    ds = fetch("kmnist", declared(source="torchvision"), cache_dir=str(tmp_path))
    np.testing.assert_array_equal(ds.x_test, arrays["t10k-images-idx3-ubyte"])
    assert ds.classes[:3] == ["o", "ki", "su"] and len(ds.classes) == 10


def test_torchvision_split_datasets_such_as_svhn_read_train_and_test(tmp_path, monkeypatch):
    """SVHN's constructor takes split= (not train=), keeps NCHW arrays and labels digit 0 as 10; the tiny
    .mat files cannot match the real checksums, which the test alone waives."""
    import scipy.io
    from torchvision import datasets

    rng = np.random.default_rng(3)
    parts = {}
    for split, n in (("train", 12), ("test", 5)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # SVHN's own (H, W, C, N)
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # 1..10, 10 meaning digit 0
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        parts[split] = (x, y)
    monkeypatch.setattr(datasets.SVHN, "_check_integrity", lambda self: True)
    ds = fetch("house_numbers", declared(source="torchvision", torchvision="SVHN"), cache_dir=str(tmp_path))
    assert ds.x_train.shape == (12, 32, 32, 3) and ds.x_test.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(ds.x_train[4], parts["train"][0][..., 4])
    assert ds.y_train.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]


def test_npz_of_a_new_dataset_takes_any_shape_and_its_class_names(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "c.npz",
        x_train=rng.integers(0, 256, (6, 20, 24, 3), dtype=np.uint8),
        y_train=np.arange(6) % 3,
        x_test=rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8),
        y_test=np.arange(3),
        classes=np.array(["ant", "bee", "cow"]),
    )
    ds = load_npz("insects", tmp_path / "c.npz")
    assert ds.classes == ["ant", "bee", "cow"] and ds.x_train.shape[1:] == (20, 24, 3)
    ds.save(tmp_path / "again.npz")
    assert load_npz("insects", tmp_path / "again.npz").classes == ["ant", "bee", "cow"]


def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def image_folder(root, classes=("cat", "dog"), n=5, colour=False, size=(40, 30), seed=0):
    rng = np.random.default_rng(seed)
    shape = (*size, 3) if colour else size
    for c in classes:
        for i in range(n):
            write_png(root / c / f"{i:02d}.png", rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.mark.parametrize("colour", [False, True])
def test_folder_dataset_with_a_seeded_split(tmp_path, colour):
    image_folder(tmp_path / "pets", n=10, colour=colour)
    ds = load_folder("pets", tmp_path / "pets", test_fraction=0.2, split_seed=0)
    assert ds.classes == ["cat", "dog"]
    assert ds.x_train.shape == ((16, 32, 32, 3) if colour else (16, 32, 32)) and len(ds.y_test) == 4
    assert np.bincount(ds.y_test).tolist() == [2, 2]
    again = load_folder("pets", tmp_path / "pets", test_fraction=0.2, split_seed=0)
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_folder_dataset_with_train_and_test_subfolders_and_a_corrupt_file(tmp_path):
    image_folder(tmp_path / "pets" / "train", n=4, colour=True)
    image_folder(tmp_path / "pets" / "test", n=2, seed=1)  # grey test images join a colour dataset
    (tmp_path / "pets" / "train" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 file.*broken\.jpg"):
        ds = load_folder("pets", tmp_path / "pets")
    assert ds.x_train.shape == (8, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.y_test.tolist() == [0, 0, 1, 1]


def test_folder_dataset_bad_layouts_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="data.pets.root .*does not exist"):
        load_folder("pets", tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no class subfolders"):
        load_folder("pets", tmp_path / "empty")
    image_folder(tmp_path / "pets", n=3)
    (tmp_path / "pets" / "emu").mkdir()
    with pytest.raises(DataError, match=r"class folder '.*emu' holds no images"):
        load_folder("pets", tmp_path / "pets")
    image_folder(tmp_path / "half" / "train", n=3)
    with pytest.raises(DataError, match="has a 'train' folder but not the other"):
        load_folder("half", tmp_path / "half")


def test_torchvision_datasets_without_a_split_or_a_download_location_are_refused(tmp_path):
    with pytest.raises(DataError, match="ImageFolder has no train/test split.*use source 'folder'"):
        fetch("imagefolder", declared(source="torchvision"), cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="FakeData has no download location.*drop the mirror"):
        fetch("fakedata", declared(source="torchvision", mirror="http://127.0.0.1:9/"), cache_dir=str(tmp_path))
