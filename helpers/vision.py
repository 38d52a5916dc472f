"""Image data sets: class folders on disk and whole sets as tensors (07_computer_vision, 08_custom_datasets).

:func:`load_image_dataset` returns any image set of the course by name as tensors in
memory: ``digits`` and ``shapes`` offline; ``fashion_mnist``, ``mnist`` and ``cifar10``
through torchvision's own classes (:mod:`helpers.downloads` fetches their files).

:class:`ImageFolderDataset` is the hand-written twin of ``torchvision.datasets.ImageFolder``
(08): the same classes, the same samples in the same order, the same images. It differs only
in its errors: an empty folder, a folder without class subfolders and an unreadable image each
raise :class:`ImageFolderError` with one message saying what is wrong and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from helpers.data import DIGIT_CLASSES, load_digits, split_tensors
from helpers.downloads import ONLINE_DATASETS, open_torchvision_dataset
from helpers.shapes import make_shapes

__all__ = [
    "IMG_EXTENSIONS", "OFFLINE_DATASETS", "VISION_DATASETS", "ImageData", "ImageFolderDataset",
    "ImageFolderError", "dataset_to_tensors", "find_classes", "find_samples", "load_image",
    "load_image_dataset", "standardize", "to_tensor_transform",
]

OFFLINE_DATASETS = ("digits", "shapes")
VISION_DATASETS = (*OFFLINE_DATASETS, *ONLINE_DATASETS)

# The file endings torchvision's ImageFolder accepts (compared in lower case).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolderError(ValueError):
    """A folder of images is not laid out as one subfolder per class, or an image cannot be read."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def find_classes(root: str | Path) -> tuple[list[str], dict[str, int]]:
    """Class names (the sorted subfolder names of ``root``) and ``class_to_idx`` (name -> 0, 1, ...)."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder: check the path (was the data set made?)")
    entries = list(os.scandir(root))
    classes = sorted(entry.name for entry in entries if entry.is_dir())
    if not classes:
        loose = sum(entry.is_file() and _is_image(entry.name) for entry in entries)
        if loose:
            raise ImageFolderError(
                f"{root} holds {loose} image file(s) but no class subfolders: move each image into a "
                f"subfolder named after its class, such as {root / 'cat' / 'image1.png'}"
            )
        what = "has no class subfolders" if entries else "is empty"
        raise ImageFolderError(
            f"{root} {what}: put one subfolder per class in it, each holding that class's images, "
            f"such as {root / 'cat' / 'image1.png'}"
        )
    return classes, {name: index for index, name in enumerate(classes)}


def find_samples(root: str | Path, class_to_idx: dict[str, int]) -> list[tuple[Path, int]]:
    """``(path, class index)`` of every image file under each class folder, sorted as ImageFolder sorts."""
    samples = []
    for name in sorted(class_to_idx):
        found = [
            (Path(folder) / file, class_to_idx[name])
            for folder, _, files in sorted(os.walk(Path(root) / name, followlinks=True))
            for file in sorted(files) if _is_image(file)
        ]
        if not found:
            raise ImageFolderError(
                f"class folder {Path(root) / name} holds no image files ({', '.join(IMG_EXTENSIONS)}): "
                "add images to it or remove the folder"
            )
        samples += found
    return samples


def load_image(path: str | Path) -> Image.Image:
    """Open an image file of any mode (RGBA, grayscale, palette, ...) as an RGB PIL image."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL reports damaged files as any of these; UnidentifiedImageError is an OSError
        reason = "not a format PIL recognises" if isinstance(error, UnidentifiedImageError) else error
        raise ImageFolderError(
            f"cannot read {path} as an image ({reason}): the file is damaged or not an image; "
            "replace or delete it and run again"
        ) from None


class ImageFolderDataset(Dataset):
    """The hand-written ``ImageFolder`` (written out in 08_custom_datasets).

    ``root/<class name>/<image file>``: classes are the sorted subfolder names,
    ``samples`` lists ``(path, class index)`` in ImageFolder's order, and
    ``dataset[i]`` is ``(transform(RGB PIL image), class index)``. It lives in
    ``helpers`` so ``DataLoader`` worker processes can import it.
    """

    def __init__(self, root: str | Path, transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.root = Path(root)
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples = find_samples(self.root, self.class_to_idx)
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label


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
