"""helpers.vision: image sets as tensors; the real torchvision classes read tiny files written here.

Every network function is replaced by one that logs and refuses (``network_calls``), with
``COURSE_OFFLINE`` unset so that an attempt would really be made: the tests check the log.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import random
import socket
import struct
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset
from torchvision import datasets

from helpers import vision
from helpers.data import load_digits
from helpers.downloads import OFFLINE_ENV, ONLINE_DATASETS, DatasetUnavailableError, torchvision_folder
from helpers.shapes import draw_shape
from helpers.vision import (
    OFFLINE_DATASETS,
    VISION_DATASETS,
    ImageData,
    dataset_to_tensors,
    load_image_dataset,
    standardize,
    to_tensor_transform,
)


@pytest.fixture
def network_calls(monkeypatch) -> list[str]:
    """The network is allowed (``COURSE_OFFLINE`` unset), but every attempt fails and is logged."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    calls: list[str] = []

    def refuse(what):
        def blocked(*args, **kwargs):
            calls.append(what)
            raise urllib.error.URLError(f"network blocked in tests ({what})")
        return blocked

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    return calls


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed idx-ubyte file as MNIST ships it: magic (0, 0, 0x08 = uint8, ndim), big-endian sizes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(root: Path, cls: type, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    """Tiny ``<root>/<ClassName>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` files."""
    rng = np.random.default_rng(0)
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", arrays[f"{split}_images"])
        write_idx(raw / f"{split}-labels-idx1-ubyte", arrays[f"{split}_labels"])
    return arrays


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, monkeypatch, per_batch: int = 2) -> dict[str, np.ndarray]:
    """Tiny pickled ``cifar-10-batches-py`` batches and ``batches.meta`` (rows of 3072 = R, G, B planes).

    CIFAR10 checks each file's MD5 against the real data's; tiny files cannot match, so the
    class's lists are pointed at the MD5s of the files written here (names and layout unchanged).
    """
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, payload: dict) -> str:
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    train_names = [name for name, _ in datasets.CIFAR10.train_list]
    data = rng.integers(0, 256, (per_batch * 6, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, per_batch * 6).tolist()
    train_list = []
    for i, name in enumerate(train_names):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        train_list.append([name, dump(name, {"data": data[rows], "labels": labels[rows]})])
    test_rows = slice(5 * per_batch, 6 * per_batch)
    test_list = [["test_batch", dump("test_batch", {"data": data[test_rows], "labels": labels[test_rows]})]]
    meta = dict(datasets.CIFAR10.meta, md5=dump("batches.meta", {"label_names": CIFAR_NAMES}))
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", test_list)
    monkeypatch.setattr(datasets.CIFAR10, "meta", meta)
    return {"train": data[:5 * per_batch], "train_labels": np.array(labels[:5 * per_batch]),
            "test": data[test_rows], "test_labels": np.array(labels[test_rows])}


@pytest.mark.parametrize(("name", "cls"), [("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)])
def test_mnist_files_on_disk_load_through_torchvision_without_network(tmp_path, network_calls, name, cls):
    arrays = write_mnist_like(tmp_path, cls)
    data = load_image_dataset(name, tmp_path)
    assert torchvision_folder(name, tmp_path) == tmp_path / cls.__name__ / "raw"
    assert data.shape == (1, 28, 28) and data.classes == cls.classes
    assert data.X_train.dtype == torch.float32 and tuple(data.X_train.shape) == (5, 1, 28, 28)
    expected = torch.from_numpy(arrays["train_images"]).unsqueeze(1).float() / 255
    torch.testing.assert_close(data.X_train, expected)
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    assert data.y_test.tolist() == arrays["t10k_labels"].tolist() and len(data.X_test) == 3
    assert network_calls == []


def test_cifar10_batches_on_disk_load_through_torchvision_without_network(tmp_path, monkeypatch, network_calls):
    arrays = write_cifar10(tmp_path, monkeypatch)
    data = load_image_dataset("cifar10", tmp_path)
    assert data.shape == (3, 32, 32) and data.classes == CIFAR_NAMES
    assert len(data.X_train) == 10 and len(data.X_test) == 2
    expected = torch.from_numpy(arrays["train"].reshape(-1, 3, 32, 32)).float() / 255
    torch.testing.assert_close(data.X_train, expected)  # planes R, G, B become channels 0, 1, 2
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    assert data.y_test.tolist() == arrays["test_labels"].tolist()
    assert network_calls == []


def test_limit_keeps_the_first_examples_of_each_split(tmp_path, network_calls):
    arrays = write_mnist_like(tmp_path, datasets.MNIST)
    data = load_image_dataset("mnist", tmp_path, limit=2)
    assert len(data.X_train) == 2 and len(data.X_test) == 2
    assert data.y_train.tolist() == arrays["train_labels"][:2].tolist()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_online_dataset_gives_one_clear_message_after_one_probe(tmp_path, network_calls, name):
    with pytest.raises(DatasetUnavailableError) as info:
        load_image_dataset(name, tmp_path)
    message = str(info.value)
    assert message.startswith(f"DATASET = {name!r} is not in {torchvision_folder(name, tmp_path)}")
    assert "DATASET = 'digits' or 'shapes'" in message  # OFFLINE_DATASETS, the offline choices
    assert "network blocked in tests" in message  # the reason, in a few words
    assert info.value.__cause__ is None and info.value.__suppress_context__  # `from None`: one message
    assert network_calls == ["socket.create_connection"]  # the quick probe only: no download was started
    assert socket.getdefaulttimeout() is None  # no process-wide timeout set on the way


def test_missing_online_dataset_with_course_offline_fails_at_once(tmp_path, network_calls, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=r"\(the network is switched off \(COURSE_OFFLINE=1\)\)"):
        load_image_dataset("fashion_mnist", tmp_path)
    assert time.perf_counter() - started < 1
    assert network_calls == []


def test_every_data_set_name_loads_offline_names_without_network_online_ones_through_their_class(
    tmp_path, monkeypatch, network_calls
):
    opened = []

    def fake_open(name, root, train, transform=None):
        opened.append((name, train))
        fake = datasets.FakeData(size=2, image_size=(1, 8, 8), num_classes=2, transform=transform)
        fake.classes = ["a", "b"]  # as torchvision's classes have
        return fake

    monkeypatch.setattr(vision, "open_torchvision_dataset", fake_open)
    for name in VISION_DATASETS:
        data = load_image_dataset(name, tmp_path, image_size=8, images_per_class=2, limit=2)
        assert len(data.X_train) == 2 and data.X_train.dtype == torch.float32, name
    assert opened == [(name, train) for name in ONLINE_DATASETS for train in (True, False)]
    assert network_calls == []
    assert set(OFFLINE_DATASETS).isdisjoint(ONLINE_DATASETS)


def test_digits_are_a_seeded_80_20_partition_of_every_digit():
    X, y = load_digits()
    data = load_image_dataset("digits", Path("unused"), seed=3)
    assert data.shape == (1, 8, 8) and data.classes == [str(d) for d in range(10)]
    assert len(data.X_train) == 1438 and len(data.X_test) == 359  # 80/20 of 1797, rounded
    pairs = [(*image, label) for image, label in zip(torch.cat([data.X_train, data.X_test]).flatten(1).tolist(),
                                                      torch.cat([data.y_train, data.y_test]).tolist(), strict=True)]
    assert sorted(pairs) == sorted((*image, label) for image, label in zip(X.flatten(1).tolist(), y.tolist(),
                                                                           strict=True)), "each image once"
    again, other = (load_image_dataset("digits", Path("unused"), seed=seed) for seed in (3, 4))
    assert torch.equal(again.X_test, data.X_test) and not torch.equal(other.X_test, data.X_test)
    assert len(load_image_dataset("digits", Path("unused"), limit=7).X_test) == 7


def test_shapes_are_generated_and_read_with_image_folder(tmp_path, network_calls):
    data = load_image_dataset("shapes", tmp_path, image_size=16, images_per_class=8, seed=1)
    assert data.classes == ["circle", "square", "triangle"] and data.shape == (3, 16, 16)
    assert torch.bincount(data.y_train).tolist() == [6, 6, 6]
    assert torch.bincount(data.y_test).tolist() == [2, 2, 2]
    assert 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert len(list((tmp_path / "shapes_16px_8each_test0.25_seed1").rglob("*.png"))) == 24
    again = load_image_dataset("shapes", tmp_path, image_size=16, images_per_class=8, seed=1)
    assert torch.equal(again.X_test, data.X_test)


def test_shapes_of_another_seed_go_to_another_folder_and_keep_the_first_with_your_image(tmp_path, network_calls):
    first = load_image_dataset("shapes", tmp_path, image_size=8, images_per_class=4, seed=1)
    folder = tmp_path / "shapes_8px_4each_test0.25_seed1"
    (folder / "train" / "circle" / "my_own.png").write_bytes(b"a learner's image")
    other = load_image_dataset("shapes", tmp_path, image_size=8, images_per_class=4, seed=2)
    assert not torch.equal(other.X_train, first.X_train)
    assert (folder / "train" / "circle" / "my_own.png").read_bytes() == b"a learner's image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes_8px_4each_test0.25_seed1",
                                                          "shapes_8px_4each_test0.25_seed2"]


def test_unknown_dataset_name_is_refused():
    with pytest.raises(ValueError, match="unknown image data set 'svhn': choose one of digits, shapes"):
        load_image_dataset("svhn", Path("unused"))


def test_to_tensor_transform_scales_a_pil_image_to_floats():
    image = draw_shape("circle", 12, random.Random(0))
    tensor = to_tensor_transform()(image)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, 12, 12)
    expected = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(tensor, expected)


def test_dataset_to_tensors_stacks_images_and_labels_in_order():
    images = torch.arange(5 * 2 * 3 * 3, dtype=torch.float32).reshape(5, 2, 3, 3)
    dataset = [(images[i], label) for i, label in enumerate([4, 0, 3, 3, 1])]  # any indexable (image, int) pairs
    X, y = dataset_to_tensors(dataset)
    assert torch.equal(X, images) and y.tolist() == [4, 0, 3, 3, 1] and y.dtype == torch.long
    X, y = dataset_to_tensors(TensorDataset(images, torch.tensor([4, 0, 3, 3, 1])), limit=2)
    assert torch.equal(X, images[:2]) and y.tolist() == [4, 0]
    assert len(dataset_to_tensors(dataset, limit=50)[0]) == 5  # a limit above the size keeps everything


def tiny_image_data(n_train: int = 40, n_test: int = 20) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(n_train + n_test, 1, 6, 6, generator=generator)
    y = (X.mean(dim=(1, 2, 3)) > 0.5).long()
    return ImageData(X[:n_train], y[:n_train], X[n_train:], y[n_train:], ["dark", "light"])


def test_image_data_repr_is_short():
    assert repr(tiny_image_data()) == "ImageData(train (40, 1, 6, 6), test (20, 1, 6, 6), classes ['dark', 'light'])"


def test_standardize_uses_training_statistics_for_both_splits():
    data = tiny_image_data()
    data.X_train[:, :, 0, 0] = 5.0  # make the statistics clearly the training split's
    standardized = standardize(data)
    assert standardized.X_train.mean().item() == pytest.approx(0, abs=1e-5)
    assert standardized.X_train.std().item() == pytest.approx(1, abs=1e-4)
    mean, std = data.X_train.mean(), data.X_train.std()
    torch.testing.assert_close(standardized.X_test, (data.X_test - mean) / std)
    assert torch.equal(standardized.y_test, data.y_test)


# The offline message says where to put the files by hand; that must work on a machine without
# network, and with COURSE_OFFLINE=1, with no attempt to reach a server.
by_hand_offline = pytest.mark.parametrize("course_offline", [None, "1"], ids=["network-down", "COURSE_OFFLINE=1"])


@by_hand_offline
def test_mnist_gz_files_put_in_raw_by_hand_are_unpacked_and_read(tmp_path, monkeypatch, network_calls, course_offline):
    """The offline message says to put the .gz files in <root>/MNIST/raw: torchvision then unpacks them."""
    if course_offline:
        monkeypatch.setenv(OFFLINE_ENV, course_offline)
    arrays = write_mnist_like(tmp_path, datasets.MNIST)
    raw = tmp_path / "MNIST" / "raw"
    resources = []
    for filename, _ in datasets.MNIST.resources:  # gzip each file, as the real downloads are
        unpacked = raw / filename.removesuffix(".gz")
        (raw / filename).write_bytes(gzip.compress(unpacked.read_bytes(), mtime=0))
        unpacked.unlink()
        resources.append((filename, hashlib.md5((raw / filename).read_bytes()).hexdigest()))
    monkeypatch.setattr(datasets.MNIST, "resources", resources)  # tiny files: their own checksums
    data = load_image_dataset("mnist", tmp_path)
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    assert network_calls == []


@by_hand_offline
def test_cifar10_archive_put_in_root_by_hand_is_unpacked_and_read(tmp_path, monkeypatch, network_calls, course_offline):
    """The offline message says to put cifar-10-python.tar.gz in <root>: torchvision then unpacks it."""
    if course_offline:
        monkeypatch.setenv(OFFLINE_ENV, course_offline)
    built = tmp_path / "built"
    arrays = write_cifar10(built, monkeypatch)
    archive = tmp_path / "root" / datasets.CIFAR10.filename
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(built / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    data = load_image_dataset("cifar10", tmp_path / "root")
    assert data.y_test.tolist() == arrays["test_labels"].tolist()
    assert network_calls == []
