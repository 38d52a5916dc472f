"""Images in class folders on disk, and predicting on one image file (08_custom_datasets).

:class:`ImageFolderDataset` is the hand-written twin of
``torchvision.datasets.ImageFolder``: the same classes, the same samples in the
same order, the same images. It differs only in its errors: an empty folder, a
folder without class subfolders and an unreadable image each raise
:class:`ImageFolderError` with one message saying what is wrong and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "IMG_EXTENSIONS", "ImageFolderDataset", "ImageFolderError", "find_classes", "find_samples",
    "load_image", "predict_image",
]

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


def predict_image(
    model: nn.Module, path: str | Path, transform: Callable[[Image.Image], torch.Tensor],
    class_names: Sequence[str], device: torch.device,
) -> tuple[str, float]:
    """Predicted class name and its probability for one image file (08_custom_datasets).

    The file may have any size and mode; it is read as RGB and passed through
    ``transform``, which must give the (C, H, W) tensor the model was trained
    on (resize included). ``model`` must already be on ``device``.
    """
    X = transform(load_image(path))
    if not isinstance(X, torch.Tensor) or X.dim() != 3:
        raise ValueError(
            f"transform must turn a PIL image into a (C, H, W) tensor, got "
            f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}: end it with "
            "ToImage() and ToDtype(torch.float32, scale=True)"
        )
    model.eval()
    with torch.inference_mode():
        logits = model(X.unsqueeze(0).to(device))  # (1, C, H, W) -> (1, num_classes)
    if logits.shape[-1] != len(class_names):
        raise ValueError(
            f"the model gives {logits.shape[-1]} class scores but class_names has {len(class_names)} "
            "names: pass the class names of the data the model was trained on"
        )
    probabilities = torch.softmax(logits[0].float(), dim=0).cpu()
    index = int(probabilities.argmax())
    return class_names[index], float(probabilities[index])
