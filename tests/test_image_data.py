"""Image datasets load through torchvision's real classes from small files written in the official
formats (IDX for MNIST/Fashion-MNIST, pickled batches for CIFAR-10); missing files give a clear error."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct

import numpy as np
import pytest

from conftest import run_dirs, tiny_recipe, write_recipe
from dltrain.data import DATASETS, prepare
from dltrain.core.errors import DataError


def data_spec(**params):
    return DATASETS.entry(params["name"]).model(**params)


def write_idx_images(path, images: np.ndarray) -> None:
    """IDX3: magic 0x00000803 (unsigned byte, 3 dimensions), then N, rows, cols big-endian, then pixels."""
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 0x803, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">ii", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root, folder: str, n_train: int = 40, n_test: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    parts = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx_images(raw / f"{split}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
        parts[split] = (images, labels)
    return parts


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_formats_load_with_the_official_test_split(tmp_path, name, folder):
    parts = write_mnist(tmp_path, folder)
    bundle = prepare(data_spec(name=name, root=str(tmp_path), normalize="none", val_fraction=0.25), seed=0)
    images, labels = parts["t10k"]
    assert bundle.input_shape == (1, 28, 28)
    assert bundle.num_classes == 10 and bundle.task == "classification"
    np.testing.assert_array_equal(bundle.test.x[:, 0], images.astype(np.float32) / 255)
    np.testing.assert_array_equal(bundle.test.y, labels)
    assert len(bundle.train) + len(bundle.val) == 40 and len(bundle.val) == 10


def test_mnist_files_missing_is_a_clear_error_saying_where_to_put_them(cli, tmp_path):
    recipe = write_recipe(tmp_path / "mnist.yaml", tiny_recipe(data={"name": "mnist", "root": str(tmp_path / "d")},
                                                               model={"arch": "cnn"}))
    result = cli("run", recipe)
    assert result.code == 2
    assert f"{tmp_path / 'd' / 'MNIST' / 'raw'}" in result.err
    assert "train-images-idx3-ubyte" in result.err and "t10k-labels-idx1-ubyte" in result.err
    assert "data.download: true" in result.err and "Traceback" not in result.err
    assert run_dirs(tmp_path / "runs") == []


def test_cnn_trains_on_mnist_files_end_to_end(cli, tmp_path):
    write_mnist(tmp_path, "MNIST", n_train=60, n_test=20)
    recipe = write_recipe(tmp_path / "mnist.yaml", tiny_recipe(
        data={"name": "mnist", "root": str(tmp_path), "batch_size": 16, "classes": [0, 1, 2], "augment": ["hflip"]},
        model={"arch": "cnn", "channels": [4], "hidden": []}, train={"epochs": 1}))
    result = cli("run", recipe)
    assert result.code == 0, result.err


def write_cifar(root, per_batch: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, handle)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"], "num_vis": 3072}, handle)
    return written


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_files(tmp_path, monkeypatch):
    """Small CIFAR-10 batches; torchvision checks MD5 sums, so its table of sums is pointed at these
    files (the only change: the loading code is torchvision's own)."""
    from torchvision.datasets import CIFAR10
    written = write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(folder / "batches.meta")})
    return written


def test_cifar10_pickled_batches_load_as_channel_first_images(tmp_path, cifar_files):
    bundle = prepare(data_spec(name="cifar10", root=str(tmp_path), normalize="none"), seed=0)
    data, labels = cifar_files["test_batch"]
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.class_names[0] == "airplane"
    np.testing.assert_array_equal(bundle.test.x, data.reshape(-1, 3, 32, 32).astype(np.float32) / 255)
    np.testing.assert_array_equal(bundle.test.y, labels)
    assert len(bundle.train) + (len(bundle.val) if bundle.val else 0) == 30


def test_cifar10_missing_names_the_folder_and_files(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*data_batch_1.*test_batch.*batches.meta"):
        prepare(data_spec(name="cifar10", root=str(tmp_path)), seed=0)


def write_images(folder, sizes: dict) -> None:
    from PIL import Image
    rng = np.random.default_rng(0)
    for cls, (count, size) in sizes.items():
        (folder / cls).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / cls / f"{i}.png")


def test_image_folder_reads_one_class_per_folder(tmp_path):
    write_images(tmp_path / "imgs", {"cat": (6, 10), "dog": (4, 10)})
    bundle = prepare(data_spec(name="image_folder", path=str(tmp_path / "imgs"), val_fraction=0.2,
                               test_fraction=0.2), seed=0)
    assert bundle.input_shape == (3, 10, 10) and bundle.class_names == ["cat", "dog"]
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 10
    gray = prepare(data_spec(name="image_folder", path=str(tmp_path / "imgs"), grayscale=True, size=[6, 8]), seed=0)
    assert gray.input_shape == (1, 6, 8)


def test_image_folder_with_mixed_sizes_asks_for_size(tmp_path):
    write_images(tmp_path / "imgs", {"a": (3, 10), "b": (3, 12)})
    with pytest.raises(DataError, match="different sizes.*set data.size"):
        prepare(data_spec(name="image_folder", path=str(tmp_path / "imgs")), seed=0)
    bundle = prepare(data_spec(name="image_folder", path=str(tmp_path / "imgs"), size=8), seed=0)
    assert bundle.input_shape == (3, 8, 8)


def test_image_folder_missing_path(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        prepare(data_spec(name="image_folder", path=str(tmp_path / "nope")), seed=0)


def test_digits_as_images_are_1x8x8_with_the_same_pixels():
    flat = prepare(data_spec(name="digits", normalize="none"), seed=0)
    images = prepare(data_spec(name="digits", as_images=True, normalize="none"), seed=0)
    assert images.input_shape == (1, 8, 8)
    np.testing.assert_array_equal(images.train.x.reshape(len(images.train), -1), flat.train.x)
    np.testing.assert_array_equal(images.test.y, flat.test.y)


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_an_image_architecture_on_digits_trains_on_8x8_images_without_as_images(cli, tmp_path, arch):
    """`digits` alone (as_images: auto) with cnn or resnet: the very run `as_images: true` gives."""
    model = {"arch": arch, "channels": [4], "hidden": []} if arch == "cnn" else {"arch": arch, "depth": 8, "width": 4}
    metrics = []
    for i, data in enumerate([{"name": "digits"}, {"name": "digits", "as_images": True}]):
        recipe = write_recipe(tmp_path / f"{i}.yaml", tiny_recipe(data={**data, "batch_size": 64}, model=model,
                                                                  train={"epochs": 1}))
        result = cli("run", recipe, "--runs-dir", tmp_path / f"runs{i}")
        assert result.code == 0, result.err
        (run,) = run_dirs(tmp_path / f"runs{i}")
        assert json.loads((run / "run.json").read_text())["data"]["input_shape"] == [1, 8, 8]
        metrics.append((run / "metrics.csv").read_text().split("\n")[1].rsplit(",", 1)[0])  # less `seconds`
    assert metrics[0] == metrics[1]


@pytest.mark.parametrize("folder", ["MNIST", "FashionMNIST"])
def test_gzipped_idx_files_as_the_official_sites_serve_them_are_found_without_download(cli, tmp_path, folder):
    import gzip
    parts = write_mnist(tmp_path / "d", folder, n_train=60, n_test=20)
    raw = tmp_path / "d" / folder / "raw"
    for plain in list(raw.iterdir()):  # leave only train-images-idx3-ubyte.gz etc., as downloaded
        (raw / f"{plain.name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    name = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist"}[folder]
    recipe = write_recipe(tmp_path / "m.yaml", tiny_recipe(
        data={"name": name, "root": str(tmp_path / "d"), "download": False, "batch_size": 16},
        model={"arch": "cnn", "channels": [4], "hidden": []}, train={"epochs": 1}))
    result = cli("run", recipe)
    assert result.code == 0, result.err
    (run,) = run_dirs(tmp_path / "runs")
    info = json.loads((run / "run.json").read_text())
    assert info["data"]["test"] == 20 and info["data"]["train"] + info["data"]["val"] == 60
    images, labels = parts["t10k"]
    bundle = prepare(data_spec(name=name, root=str(tmp_path / "d"), normalize="none"), seed=0)
    np.testing.assert_array_equal(bundle.test.x[:, 0], images.astype(np.float32) / 255)  # the very pixels
    assert not list(raw.glob(".*"))  # no partial file left


def test_a_corrupt_gzipped_idx_file_is_a_clear_error(cli, tmp_path):
    write_mnist(tmp_path / "d", "MNIST")
    raw = tmp_path / "d" / "MNIST" / "raw"
    (raw / "train-images-idx3-ubyte").unlink()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    recipe = write_recipe(tmp_path / "m.yaml", tiny_recipe(data={"name": "mnist", "root": str(tmp_path / "d")},
                                                           model={"arch": "cnn"}))
    result = cli("run", recipe)
    assert result.code == 2 and "cannot unpack" in result.err and "train-images-idx3-ubyte.gz" in result.err
    assert "Traceback" not in result.err and run_dirs(tmp_path / "runs") == []
