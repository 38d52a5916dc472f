"""Image data sets: class folders on disk and whole sets as tensors (07_computer_vision, 08_custom_datasets).

:func:`load_image_dataset` returns any image set of the course by name as tensors in
memory: ``digits`` and ``shapes`` offline; ``fashion_mnist``, ``mnist`` and ``cifar10``
through torchvision's own classes (:mod:`helpers.downloads` fetches their files).

:class:`ImageFolderDataset` is the hand-written twin of ``torchvision.datasets.ImageFolder``
(08): the same classes, the same samples in the same order, the same images. It differs only
in its errors: an empty folder, a folder without class subfolders and an unreadable image each
raise :class:`ImageFolderError` with one message saying what is wrong and what to do.

:func:`check_image_folder` checks a folder of your own images before anything is trained or
written, and :func:`split_image_folder` copies one folder of class folders into train/ and test/
folders (08's ``IMAGE_DIR``).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from helpers.data import DIGIT_CLASSES, load_data
from helpers.downloads import ONLINE_DATASETS, open_torchvision_dataset
from helpers.shapes import make_shapes, shapes_folder
from helpers.staging import replace_folder

__all__ = [
    "IMG_EXTENSIONS", "OFFLINE_DATASETS", "SPLITS", "VISION_DATASETS", "ImageData", "ImageFolderDataset",
    "ImageFolderError", "ImageFolderSummary", "check_image_folder", "dataset_to_tensors", "find_classes",
    "find_samples", "load_image", "load_image_dataset", "split_image_folder", "standardize",
    "to_tensor_transform",
]

OFFLINE_DATASETS = ("digits", "shapes")
VISION_DATASETS = (*OFFLINE_DATASETS, *ONLINE_DATASETS)

# The file endings torchvision's ImageFolder accepts (compared in lower case).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# A folder holding these two subfolders is already split into training and test images.
SPLITS = ("train", "test")


class ImageFolderError(ValueError):
    """A folder of images is not laid out as one subfolder per class, or an image cannot be read."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def find_classes(root: str | Path) -> tuple[list[str], dict[str, int]]:
    """Class names (the sorted subfolder names of ``root``) and ``class_to_idx`` (name -> 0, 1, ...)."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder: check the path")
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
                f"class folder {Path(root) / name} holds no image files: add {', '.join(IMG_EXTENSIONS)} "
                "images to it or remove the folder"
            )
        samples += found
    return samples


# What PIL raises for a damaged file or one that is not an image (UnidentifiedImageError is an OSError).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _why_unreadable(error: Exception) -> str:
    return "not a format PIL recognises" if isinstance(error, UnidentifiedImageError) else str(error)


def _cannot_read(path: str | Path, error: Exception) -> ImageFolderError:
    return ImageFolderError(
        f"cannot read {path} as an image ({_why_unreadable(error)}): the file is damaged or not an image; "
        "replace or delete it and run again"
    )


def load_image(path: str | Path) -> Image.Image:
    """Open an image file of any mode (RGBA, grayscale, palette, ...) as an RGB PIL image."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except _PIL_ERRORS as error:
        raise _cannot_read(path, error) from None


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


@dataclass(frozen=True)
class ImageFolderSummary:
    """What :func:`check_image_folder` found in a folder it accepted."""

    root: Path
    classes: list[str]       # the class folder names, sorted as ImageFolder sorts them
    counts: dict[str, int]   # image files per class, train/ and test/ together when split
    split: bool              # True when root holds train/ and test/, False for root/<class>/<image>
    ignored: list[Path]      # files skipped because their ending is not an image ending

    @property
    def n_images(self) -> int:
        """Image files in the whole folder."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        layout = "already split into train/ and test/" if self.split else "one folder per class"
        counts = ", ".join(f"{name} {count}" for name, count in self.counts.items())
        text = f"{len(self.classes)} classes, {self.n_images} images ({counts}), {layout}"
        if self.ignored:
            text += f"; {len(self.ignored)} file(s) without an image ending skipped, such as {self.ignored[0].name}"
        return text


def _unreadable(path: Path) -> Exception | None:
    """The error PIL raises when decoding ``path`` to RGB (None if it decodes), as training would."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at a reduced scale, which still reads every byte
            image.convert("RGB")
    except _PIL_ERRORS as error:
        return error
    return None


def _check_classes(tree: Path, min_images: int, problems: list[str]) -> dict[str, list[Path]]:
    """Every file under each class folder of ``tree``, by class; appends what is wrong to ``problems``."""
    classes, _ = find_classes(tree)  # raises at once for a missing or empty folder, or loose images
    files = {name: [Path(folder) / file for folder, _, names in sorted(os.walk(tree / name, followlinks=True))
                    for file in sorted(names)] for name in classes}
    for name, paths in files.items():
        images = [path for path in paths if _is_image(path.name)]
        if not images:
            others = f" (its {len(paths)} other file(s), such as {paths[0].name}, are skipped)" if paths else ""
            problems.append(f"class folder {tree / name} holds no image files{others}: add "
                            f"{', '.join(IMG_EXTENSIONS)} images to it or remove the folder")
        elif len(images) < min_images:
            problems.append(f"class folder {tree / name} holds only {len(images)} image: at least {min_images} "
                            "are needed, one to train on and one to test")
    return files


def check_image_folder(root: str | Path, max_listed: int = 5) -> ImageFolderSummary:
    """Check a folder of your own images before anything is trained or written (08_custom_datasets).

    Two layouts are accepted: ``root/<class>/<image>``, whose files are then split into training
    and test images (so each class needs at least 2), or ``root/train/<class>/<image>`` and
    ``root/test/<class>/<image>`` with the same classes in both. Every image file (any ending of
    :data:`IMG_EXTENSIONS`) is decoded once, as training will decode it, so a damaged file is found
    now rather than in the middle of an epoch; other files are skipped, as ``ImageFolder`` skips
    them, and listed in ``ignored``. Nothing is written.

    Raises :class:`ImageFolderError` listing every problem found, one line each: a missing or empty
    folder, images without class folders, only one class, a class folder without images, a class
    with a single image (first layout), different classes in train/ and test/, and each file that
    cannot be read as an image (the first ``max_listed``, then how many more).
    """
    if not isinstance(root, (str, os.PathLike)):
        raise ImageFolderError(f"{root!r} is not a folder path: give the folder as text, such as 'my_images'")
    root = Path(root)
    split = all((root / name).is_dir() for name in SPLITS)
    problems: list[str] = []
    trees = [_check_classes(root / name, 1, problems) for name in SPLITS] if split else [
        _check_classes(root, 2, problems)]
    classes = list(trees[0])
    if split and set(trees[0]) != set(trees[1]):
        only = [f"only in {name}/: {', '.join(sorted(set(mine) - set(other)))}"
                for name, mine, other in (("train", *trees), ("test", *trees[::-1])) if set(mine) - set(other)]
        problems.append(f"train/ and test/ must hold the same class folders ({'; '.join(only)})")
    if len(classes) < 2:
        problems.append(f"only one class folder, {classes[0]!r}: a classifier needs at least two "
                        "classes, so add one folder of images for each other class")
    files = [path for tree in trees for paths in tree.values() for path in paths]
    unreadable = [(path, error) for path in files if _is_image(path.name) and (error := _unreadable(path)) is not None]
    problems += [str(_cannot_read(path, error)) for path, error in unreadable[:max_listed]]
    if len(unreadable) > max_listed:
        problems.append(f"... and {len(unreadable) - max_listed} more files that cannot be read as images")
    if problems:
        plural = "s" if len(problems) > 1 else ""
        raise ImageFolderError(f"{root} cannot be used for training ({len(problems)} problem{plural}):\n- "
                               + "\n- ".join(problems))
    counts = {name: sum(_is_image(path.name) for tree in trees for path in tree[name]) for name in classes}
    return ImageFolderSummary(root, classes, counts, split, [path for path in files if not _is_image(path.name)])


_SPLIT_MARKER = "split.json"


def split_image_folder(root: str | Path, dest: str | Path, test_fraction: float = 0.25, seed: int = 0) -> Path:
    """Copy ``root/<class>/<image>`` into ``dest/train/<class>/`` and ``dest/test/<class>/``; return ``dest``.

    In each class a seeded random ``test_fraction`` of the image files (at least one, and at least
    one left for training) is copied to test/ and the rest to train/, so both splits hold every
    class in the same proportions (08_custom_datasets). ``root`` is only read; check it with
    :func:`check_image_folder` first.
    The same files and seed give the same split. Nothing is done when ``dest`` already holds the
    split of the same files (its ``split.json`` lists them); otherwise the split is written to a
    temporary folder and moved into place (:func:`helpers.staging.replace_folder`), so an interrupted
    run never leaves half of it. A ``dest`` that holds anything this function did not write (a folder
    it did not make, a file of yours added to the split) is refused with ``FileExistsError``: name
    ``dest`` after the seed and test fraction, so another split goes to another folder.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    root, dest = Path(root).resolve(), Path(dest)
    classes, class_to_idx = find_classes(root)
    samples = find_samples(root, class_to_idx)
    config = {"root": str(root), "test_fraction": test_fraction, "seed": seed,
              "files": [[str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns]
                        for path, _ in samples]}

    def write(staging: Path) -> None:
        for name in classes:
            files = [path for path, label in samples if label == class_to_idx[name]]
            if len(files) < 2:
                raise ValueError(f"class {name!r} has {len(files)} image(s): at least 2 are needed to split it")
            n_test = min(max(1, round(len(files) * test_fraction)), len(files) - 1)  # both splits get some
            test = set(random.Random(f"{seed}-{name}").sample(range(len(files)), n_test))  # stable seeding
            for i, path in enumerate(files):
                target = staging / ("test" if i in test else "train") / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)

    def legacy_files(settings: dict) -> list[str]:  # a split.json from before it listed the files written
        return [f"{split}/{Path(name).as_posix()}" for name, *_ in settings["files"] for split in SPLITS]

    return replace_folder(dest, _SPLIT_MARKER, config, write, "split_image_folder", legacy_files=legacy_files)


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

    ``digits`` is :func:`helpers.data.load_data`'s 80/20 split with ``seed``; ``shapes`` is generated under
    ``root/shapes_<size>px_<n>each_test0.25_seed<seed>`` (``images_per_class`` images of
    ``image_size`` pixels, a quarter kept for testing; :func:`helpers.shapes.shapes_folder`) and read
    with ``ImageFolder``; the online sets use torchvision's classes under ``root``. ``limit``
    keeps the first examples of each split (quick runs).
    """
    if name not in VISION_DATASETS:
        raise ValueError(f"unknown image data set {name!r}: choose one of {', '.join(VISION_DATASETS)}")
    if name == "digits":
        X_train, X_test, y_train, y_test = load_data("digits", seed)
        return ImageData(X_train[:limit], y_train[:limit], X_test[:limit], y_test[:limit],
                         list(DIGIT_CLASSES))
    if name == "shapes":
        folder = shapes_folder(root, images_per_class, image_size, seed)
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
