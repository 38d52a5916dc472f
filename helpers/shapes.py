"""The generated ``shapes`` image set: an ImageFolder tree on disk (07_computer_vision, 08_custom_datasets).

Colour images of circles, squares and triangles of random size, position,
colour and background, written as PNG files in one folder per class:

    root/train/circle/circle_0000.png ...   root/test/triangle/triangle_0024.png

The same seed gives the same files, byte for byte, on every machine.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["SHAPE_CLASSES", "draw_shape", "make_shapes"]

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


def make_shapes(
    root: Path, images_per_class: int = 100, image_size: int = 32, seed: int = 0,
    test_fraction: float = 0.25,
) -> Path:
    """Write the shapes set under ``root`` (train/ and test/ ImageFolder trees) and return ``root``.

    Does nothing when ``root`` already holds the set made with the same
    arguments. Otherwise the set is written to a temporary folder first and
    moved into place, so an interrupted run never leaves half a data set.
    ``root`` is only replaced when it is empty or holds a set this function made
    (its ``shapes.json`` marker); any other existing folder is refused with a
    ``FileExistsError``, so nothing of yours is deleted.
    """
    if images_per_class < 2 or image_size < 8 or not 0 < test_fraction < 1:
        raise ValueError("need images_per_class >= 2, image_size >= 8 and 0 < test_fraction < 1")
    root = Path(root)
    config = {"images_per_class": images_per_class, "image_size": image_size, "seed": seed,
              "test_fraction": test_fraction, "classes": list(SHAPE_CLASSES)}
    marker = root / _MARKER
    if _read_marker(marker) == config:
        return root
    if root.exists() and not (root.is_dir() and (marker.is_file() or not any(root.iterdir()))):
        raise FileExistsError(
            f"{root} already exists and was not made by make_shapes (no {_MARKER} in it), so it is left "
            "alone: choose another folder for the shapes, or move or delete this one yourself"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        _write_shapes(staging, config)
        if root.exists():
            shutil.rmtree(root)  # an empty folder or an older set of ours (checked above)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after the rename; left over after an error
    return root


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _write_shapes(folder: Path, config: dict) -> None:
    n_per_class, seed = config["images_per_class"], config["seed"]
    n_test = max(1, round(n_per_class * config["test_fraction"]))
    for kind in SHAPE_CLASSES:
        for i in range(n_per_class):
            split = "test" if i < n_test else "train"
            (folder / split / kind).mkdir(parents=True, exist_ok=True)
            rng = random.Random(f"{seed}-{kind}-{i}")  # string seeds are stable across runs and machines
            draw_shape(kind, config["image_size"], rng).save(folder / split / kind / f"{kind}_{i:04d}.png")
    (folder / _MARKER).write_text(json.dumps(config, indent=1))
