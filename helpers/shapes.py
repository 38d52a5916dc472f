"""The generated ``shapes`` image set: an ImageFolder tree on disk (07_computer_vision, 08_custom_datasets).

Colour images of circles, squares and triangles of random size, position,
colour and background, written as PNG files in one folder per class:

    root/train/circle/circle_0000.png ...   root/test/triangle/triangle_0024.png

The same seed gives the same files, byte for byte, on every machine.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

from helpers.staging import replace_folder

__all__ = ["SHAPE_CLASSES", "draw_shape", "make_shapes", "shapes_folder"]

SHAPE_CLASSES = ("circle", "square", "triangle")
_SUPERSAMPLE = 4  # draw 4x larger, then shrink: smooth edges
_MARKER = "shapes.json"


def _colour(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return tuple(rng.randint(low, high) for _ in range(3))


def draw_shape(kind: str, image_size: int, rng: random.Random) -> Image.Image:
    """One RGB image of ``kind`` (``circle``, ``square`` or ``triangle``) drawn with ``rng``."""
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape {kind!r}: choose one of {', '.join(SHAPE_CLASSES)}")
    size = image_size * _SUPERSAMPLE
    image = Image.new("RGB", (size, size), _colour(rng, 150, 255))  # light background
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.2, 0.4) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    fill = _colour(rng, 0, 120)  # dark shape: always visible on the light background
    if kind == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        corners = 4 if kind == "square" else 3
        turn = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * math.cos(turn + 2 * math.pi * k / corners),
                   cy + radius * math.sin(turn + 2 * math.pi * k / corners)) for k in range(corners)]
        draw.polygon(points, fill=fill)
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


def shapes_folder(
    parent: Path, images_per_class: int = 100, image_size: int = 32, seed: int = 0, test_fraction: float = 0.25,
) -> Path:
    """The folder under ``parent`` named after every setting of :func:`make_shapes` (07, 08).

    >>> shapes_folder(Path("data"), 300, 32, seed=42)
    PosixPath('data/shapes_32px_300each_test0.25_seed42')
    """
    return Path(parent) / f"shapes_{image_size}px_{images_per_class}each_test{float(test_fraction)!r}_seed{seed}"


def make_shapes(
    root: Path, images_per_class: int = 100, image_size: int = 32, seed: int = 0,
    test_fraction: float = 0.25,
) -> Path:
    """Write the shapes set under ``root`` (train/ and test/ ImageFolder trees) and return ``root``.

    Does nothing when ``root`` already holds the set made with the same
    arguments. Otherwise the set is written to a temporary folder first and
    moved into place (:func:`helpers.staging.replace_folder`), so an interrupted
    run never leaves half a data set. ``root`` is only replaced when it is empty
    or holds nothing but a set this function made (its ``shapes.json`` marker
    lists the files); anything else, such as an image of yours added to the set,
    is refused with a ``FileExistsError``, so nothing of yours is deleted.
    :func:`shapes_folder` names a folder after the arguments.
    """
    if images_per_class < 2 or image_size < 8 or not 0 < test_fraction < 1:
        raise ValueError("need images_per_class >= 2, image_size >= 8 and 0 < test_fraction < 1")
    config = {"images_per_class": images_per_class, "image_size": image_size, "seed": seed,
              "test_fraction": test_fraction, "classes": list(SHAPE_CLASSES)}
    return replace_folder(Path(root), _MARKER, config, lambda folder: _write_shapes(folder, config), "make_shapes",
                          legacy_files=lambda settings: [name for name, _, _ in _shape_files(settings)])


def _shape_files(config: dict) -> list[tuple[str, str, int]]:
    """``(relative path, shape, index)`` of every image the set of ``config`` holds."""
    n_test = max(1, round(config["images_per_class"] * config["test_fraction"]))
    return [(f"{'test' if i < n_test else 'train'}/{kind}/{kind}_{i:04d}.png", kind, i)
            for kind in SHAPE_CLASSES for i in range(config["images_per_class"])]


def _write_shapes(folder: Path, config: dict) -> None:
    for name, kind, i in _shape_files(config):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"{config['seed']}-{kind}-{i}")  # string seeds are stable across runs and machines
        draw_shape(kind, config["image_size"], rng).save(folder / name)
