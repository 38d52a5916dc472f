"""Image data sets by name, and timed model comparisons (introduced in 07_computer_vision).

``digits`` and ``shapes`` work offline. ``fashion_mnist``, ``mnist`` and
``cifar10`` go through torchvision's own dataset classes: they read the files
when they are already in the data folder and download them otherwise. Without
a network, such a choice stops with one :class:`DatasetUnavailableError` that
names the offline choices and the folder where the files can be put by hand.
"""

from __future__ import annotations

import socket
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset
from torchvision import datasets
from torchvision.transforms import v2

from helpers.data import DIGIT_CLASSES, load_digits, make_loaders, split_tensors
from helpers.device import set_seed
from helpers.engine import Batches, fit
from helpers.models import count_parameters
from helpers.shapes import make_shapes

__all__ = [
    "OFFLINE_DATASETS", "ONLINE_DATASETS", "VISION_DATASETS", "DatasetUnavailableError", "ImageData",
    "compare_models", "dataset_to_tensors", "format_comparison", "load_image_dataset",
    "open_torchvision_dataset", "standardize", "synchronize", "to_tensor_transform", "torchvision_folder",
    "train_and_time",
]

OFFLINE_DATASETS = ("digits", "shapes")
ONLINE_DATASETS = {"fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST,
                   "cifar10": datasets.CIFAR10}
VISION_DATASETS = (*OFFLINE_DATASETS, *ONLINE_DATASETS)
DOWNLOAD_TIMEOUT_S = 20.0  # per network operation: an offline machine that drops packets fails fast


class DatasetUnavailableError(RuntimeError):
    """An online data set is neither in the data folder nor downloadable (no network)."""


@dataclass
class ImageData:
    """Images (N, C, H, W) float32 in [0, 1] and labels (N,) int64 for both splits, with class names."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    def __repr__(self) -> str:
        return (f"ImageData(train {tuple(self.X_train.shape)}, test {tuple(self.X_test.shape)}, "
                f"classes {self.classes})")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        channels, height, width = self.X_train.shape[1:]
        return channels, height, width


def to_tensor_transform() -> v2.Compose:
    """PIL image -> float32 tensor (C, H, W) scaled to [0, 1], with torchvision's transforms v2."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def torchvision_folder(name: str, root: Path) -> Path:
    """The folder in which torchvision's class for ``name`` looks for its files under ``root``."""
    cls = ONLINE_DATASETS[name]
    if issubclass(cls, datasets.MNIST):
        return Path(root) / cls.__name__ / "raw"
    return Path(root) / cls.base_folder


def _hand_copy_hint(name: str, root: Path) -> str:
    cls = ONLINE_DATASETS[name]
    if issubclass(cls, datasets.MNIST):
        files = ", ".join(filename for filename, _ in cls.resources)
        return f"put its files ({files}) in {torchvision_folder(name, root)}"
    return (f"put {cls.filename} in {root} (or the files it unpacks to in "
            f"{torchvision_folder(name, root)})")


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give network calls without a timeout of their own at most ``seconds`` per operation."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else min(previous, seconds))
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def open_torchvision_dataset(
    name: str, root: Path, train: bool, transform: Callable | None = None
) -> Dataset:
    """torchvision's own dataset ``name`` under ``root``: read from disk, else downloaded.

    Raises :class:`DatasetUnavailableError` when the files are missing and the
    download fails (no network).
    """
    if name not in ONLINE_DATASETS:
        raise ValueError(f"unknown torchvision data set {name!r}: choose one of {', '.join(ONLINE_DATASETS)}")
    cls = ONLINE_DATASETS[name]
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except RuntimeError:
        pass  # not on disk yet: download it
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return cls(str(root), train=train, transform=transform, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        offline = " or ".join(repr(n) for n in OFFLINE_DATASETS)
        raise DatasetUnavailableError(
            f"DATASET = {name!r} is not in {torchvision_folder(name, root)} and could not be downloaded "
            f"({reason}). Without a network choose an offline data set, DATASET = {offline}; or download "
            f"it on another machine and {_hand_copy_hint(name, root)}."
        ) from None


def dataset_to_tensors(dataset: Dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read every (image tensor, label) pair of ``dataset`` (the first ``limit`` if given) into two tensors."""
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.as_tensor(labels, dtype=torch.long)


def load_image_dataset(
    name: str, root: Path, image_size: int = 32, seed: int = 0, images_per_class: int = 1000,
    limit: int | None = None,
) -> ImageData:
    """The image set ``name`` (one of :data:`VISION_DATASETS`) as in-memory tensors.

    ``digits`` is split 80/20 with ``seed``; ``shapes`` is generated under
    ``root/shapes_<size>px_<n>each`` (``images_per_class`` images of ``image_size`` pixels, a
    quarter kept for testing) and read with ``ImageFolder``; the online sets use
    torchvision's classes under ``root``. ``limit`` keeps the first examples of
    each split (quick runs).
    """
    if name not in VISION_DATASETS:
        raise ValueError(f"unknown image data set {name!r}: choose one of {', '.join(VISION_DATASETS)}")
    if name == "digits":
        X_train, X_test, y_train, y_test = split_tensors(*load_digits(), test_fraction=0.2, seed=seed)
        return ImageData(X_train[:limit], y_train[:limit], X_test[:limit], y_test[:limit],
                         list(DIGIT_CLASSES))
    if name == "shapes":
        folder = Path(root) / f"shapes_{image_size}px_{images_per_class}each"
        make_shapes(folder, images_per_class, image_size, seed=seed)
        train = datasets.ImageFolder(folder / "train", transform=to_tensor_transform())
        test = datasets.ImageFolder(folder / "test", transform=to_tensor_transform())
    else:
        train = open_torchvision_dataset(name, root, True, to_tensor_transform())
        test = open_torchvision_dataset(name, root, False, to_tensor_transform())
    return ImageData(*dataset_to_tensors(train, limit), *dataset_to_tensors(test, limit),
                     list(train.classes))


def standardize(data: ImageData) -> ImageData:
    """Shift and scale each colour channel to mean 0, std 1 with the training split's statistics.

    The same ``v2.Normalize`` (training mean and std) is applied to both splits, so nothing
    about the test images leaks into the preprocessing.
    """
    mean, std = data.X_train.mean(dim=(0, 2, 3)), data.X_train.std(dim=(0, 2, 3))
    normalize = v2.Normalize(mean=mean.tolist(), std=std.clamp_min(1e-6).tolist())
    return ImageData(normalize(data.X_train), data.y_train, normalize(data.X_test), data.y_test,
                     list(data.classes))


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (GPUs run asynchronously); no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def train_and_time(
    model: nn.Module, train_loader: Batches, test_loader: Batches, epochs: int, learning_rate: float,
    device: torch.device,
) -> tuple[list[dict[str, float]], float]:
    """Train ``model`` (already on ``device``) with Adam and cross-entropy; return its history and seconds.

    One forward pass on a test batch runs before the clock starts, so one-off start-up costs
    (CUDA kernels, memory pools) are not charged to whichever model is timed first.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    X_warm, _ = next(iter(test_loader))
    with torch.inference_mode():  # warm-up: the first call on a GPU also pays for its start-up
        model.eval()
        model(X_warm.to(device))
    synchronize(device)
    started = time.perf_counter()
    history = fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs, device,
                  progress="none")
    synchronize(device)
    return history, time.perf_counter() - started


def compare_models(
    builders: dict[str, Callable[[], nn.Module]], data: ImageData, epochs: int, batch_size: int,
    learning_rate: float, device: torch.device, seed: int = 0,
) -> list[dict[str, float | int | str]]:
    """Build (seeded), train and time each model on ``data``, all on ``device``; one row per model.

    Each row holds ``model``, ``test_acc``, ``parameters``, ``seconds`` and ``device``.
    """
    rows = []
    for name, build in builders.items():
        set_seed(seed)
        model = build().to(device)
        train_loader, test_loader = make_loaders(
            TensorDataset(data.X_train, data.y_train), TensorDataset(data.X_test, data.y_test),
            batch_size, seed=seed)
        history, seconds = train_and_time(model, train_loader, test_loader, epochs, learning_rate, device)
        rows.append({"model": name, "test_acc": history[-1]["test_acc"],
                     "parameters": count_parameters(model), "seconds": seconds, "device": str(device)})
    return rows


def format_comparison(rows: list[dict[str, float | int | str]]) -> str:
    """A plain-text table of :func:`compare_models` rows; refuses rows timed on different devices."""
    devices = {row["device"] for row in rows}
    if len(devices) != 1:
        raise ValueError(f"timings from different devices cannot be compared: {sorted(devices)}")
    width = max([len(str(row["model"])) for row in rows] + [5])
    lines = [f"{'model':<{width}}  test acc  parameters  train s  device",
             f"{'-' * width}  --------  ----------  -------  ------"]
    for row in rows:
        lines.append(f"{row['model']:<{width}}  {row['test_acc']:8.2%}  {row['parameters']:10,d}  "
                     f"{row['seconds']:7.2f}  {row['device']}")
    return "\n".join(lines)
