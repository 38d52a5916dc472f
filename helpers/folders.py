"""Images in class folders on disk, and predicting on one image file (08_custom_datasets).

:class:`ImageFolderDataset` is the hand-written twin of
``torchvision.datasets.ImageFolder``: the same classes, the same samples in the
same order, the same images. It differs only in its errors: an empty folder, a
folder without class subfolders and an unreadable image each raise
:class:`ImageFolderError` with one message saying what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from helpers.vision import load_image

__all__ = ["predict_image"]

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
