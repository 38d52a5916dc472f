"""Transfer learning: pretrained models, a new last layer, freezing (introduced in 09_transfer_learning).

A pretrained classifier is a *backbone* that turns images into feature vectors and a last
layer that scores the classes of its source task. Transfer learning keeps the backbone and
replaces that last layer with a new one for the target task (:class:`TransferModel`).

Where the pretrained model comes from:

- torchvision's ImageNet weights, built by the notebook with the model's own constructor
  (``mobilenet_v3_small(weights=weights)``) once :func:`imagenet_weights_problem` says the
  file is in the ``torch.hub`` cache (or was just downloaded) and loads with
  ``weights_only=True``; :class:`ImageNetInput` prepares grey digits for it;
- otherwise, a ``TinyVGG`` that :func:`pretrain_source_model` pretrains on the *source task*,
  handwritten digits 0-4 moved by random shifts (:func:`shift_digits`, new shifts every epoch),
  saved as a state dict and reused on the next run with the same configuration.

The *target task* is digits 5-9, each shifted once, with only a few labelled examples per class.
With a frozen backbone, :func:`head_inputs` computes each image's features once, so that only the
new last layer trains on them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helpers.atomic import atomic_save
from helpers.checkpoint import CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError, safe_load
from helpers.data import load_digits, select_digits, split_tensors
from helpers.device import make_generator, set_seed
from helpers.downloads import WeightsUnavailableError, fetch_weights
from helpers.engine import fit
from helpers.models import TinyVGG

__all__ = [
    "MAX_LABELLED_PER_CLASS", "MAX_SHIFT", "SOURCE_DIGITS", "TARGET_DIGITS", "WEIGHTS_CHOICES",
    "ImageNetInput", "ShiftedBatches", "TransferModel", "head_inputs", "imagenet_weights_problem", "last_layer",
    "pretrain_source_model", "random_init_copy", "shift_digits",
]

WEIGHTS_CHOICES = ("auto", "self")
SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)
MAX_LABELLED_PER_CLASS = 87  # digit 8 has 174 images: half are test images, the other 87 can be labelled
MAX_SHIFT = 2  # pixels: digits move by -2 to +2 pixels in each direction, on a 12 x 12 canvas


def shift_digits(X: torch.Tensor, generator: torch.Generator, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Each image on a canvas ``max_shift`` pixels larger on every side, moved by a random shift (09).

    The shift is a whole number of pixels from ``-max_shift`` to ``max_shift``, down and right,
    drawn for each image from ``generator``; nothing of the image is cut off.

    >>> shift_digits(torch.ones(3, 1, 8, 8), make_generator(0)).shape
    torch.Size([3, 1, 12, 12])
    """
    canvas = F.pad(X, (max_shift,) * 4)  # (N, C, H, W) -> (N, C, H + 2 s, W + 2 s), zeros around
    shifts = torch.randint(-max_shift, max_shift + 1, (len(X), 2), generator=generator).tolist()
    return torch.stack([torch.roll(image, (down, right), dims=(-2, -1))  # within the zero border: no wrap
                        for image, (down, right) in zip(canvas, shifts, strict=True)])


class ShiftedBatches:
    """Batches of ``X, y`` in a new order with new random shifts on every pass (pretraining, 09)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int,
                 max_shift: int = MAX_SHIFT) -> None:
        self.X, self.y, self.batch_size, self.max_shift = X, y, batch_size, max_shift
        self.generator = make_generator(seed)

    def __len__(self) -> int:
        return -(-len(self.X) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.X), generator=self.generator)
        X = shift_digits(self.X[order], self.generator, self.max_shift)
        y = self.y[order]
        for start in range(0, len(X), self.batch_size):
            yield X[start:start + self.batch_size], y[start:start + self.batch_size]


class ImageNetInput(nn.Module):
    """Grey images to 3 channels, then the weights' own preprocessing (``weights.transforms()``)."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W): the same grey in R, G and B
        return self.transform(x)  # resize, centre crop, normalise with ImageNet's mean and std


def imagenet_weights_problem(weights: Any) -> str:
    """``""`` when torchvision ``weights`` can be used offline now, else why not (one sentence, no full stop).

    Usable means: the file is in the ``torch.hub`` cache, or was just downloaded into it, and
    loads with ``weights_only=True`` (:func:`helpers.downloads.fetch_weights`). Then the model's
    constructor, e.g. ``mobilenet_v3_small(weights=weights)``, reads that checked file.
    """
    try:
        fetch_weights(weights)
    except WeightsUnavailableError as error:
        return str(error)
    return ""


def _pretrain_config(hidden_units: int, seed: int, epochs: int, max_shift: int,
                     device: torch.device) -> dict[str, Any]:
    return {"model": "TinyVGG", "saved": "whole model", "in_channels": 1, "hidden_units": hidden_units,
            "source": "shifted digits", "source_digits": list(SOURCE_DIGITS), "max_shift": max_shift,
            "epochs": epochs, "batch_size": 64, "learning_rate": 0.003, "seed": seed, "device": device.type}


def _read_saved(path: Path) -> dict[str, Any] | None:
    """The saved pretraining file, or None when there is none or it cannot be read (then we pretrain again)."""
    try:
        saved = safe_load(path)
    except (CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError):  # pretrain again, overwrite it
        return None
    return saved if isinstance(saved, dict) else None


def pretrain_source_model(
    save_dir: Path, device: torch.device, hidden_units: int = 16, seed: int = 0, epochs: int = 40,
    max_shift: int = MAX_SHIFT,
) -> tuple[TinyVGG, str]:
    """A ``TinyVGG`` pretrained on randomly shifted digits 0-4 (returned on the CPU), and how it was obtained.

    80 % of the digits 0-4 train, with new shifts of up to ``max_shift`` pixels every epoch
    (:class:`ShiftedBatches`); the other 20 %, shifted once, measure the source test accuracy.
    The weights are saved in ``save_dir`` under a name derived from the
    configuration, and loaded from there (``weights_only=True``) when present.
    """
    config = _pretrain_config(hidden_units, seed, epochs, max_shift, device)
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(save_dir) / f"tinyvgg_digits0-4_{key}.pt"
    model = TinyVGG(1, hidden_units, len(SOURCE_DIGITS))
    saved = _read_saved(path)
    if saved is not None and saved.get("config") == config:
        model.load_state_dict(saved["model"])
        return model, (f"loaded from {path.name}, saved by an earlier run with the same configuration "
                       f"(source test accuracy {saved['source_acc']:.1%})")
    started = time.perf_counter()
    X, y = select_digits(*load_digits(), SOURCE_DIGITS)
    X_train, X_test, y_train, y_test = split_tensors(X, y, test_fraction=0.2, seed=seed)
    set_seed(seed)
    model = TinyVGG(1, hidden_units, len(SOURCE_DIGITS)).to(device)
    train_loader = ShiftedBatches(X_train, y_train, config["batch_size"], seed=seed, max_shift=max_shift)
    test_loader = [(shift_digits(X_test, make_generator(seed + 1), max_shift), y_test)]
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    history = fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs, device,
                  progress="none")
    model = model.cpu()
    source_acc = history[-1]["test_acc"]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    atomic_save({"config": config, "model": model.state_dict(), "source_acc": source_acc}, path)
    each = f"shifted anew in each of {epochs} epoch" if max_shift else f"not shifted, for {epochs} epoch"
    return model, (f"trained now on {len(X_train)} images, {each}{'s' * (epochs != 1)}, in "
                   f"{time.perf_counter() - started:.1f} s (source test accuracy {source_acc:.1%}) "
                   f"and saved as {path.name}")


def last_layer(network: nn.Module) -> tuple[nn.Module, str]:
    """Where the last layer of a torchvision-style classifier sits: ``(parent, name)``.

    ``network.classifier[-1]`` (MobileNets, EfficientNets, VGG, TinyVGG), ``network.classifier``
    when it is one layer, or ``network.fc`` (ResNets).
    """
    classifier = getattr(network, "classifier", None)
    if isinstance(classifier, nn.Sequential):
        return classifier, str(len(classifier) - 1)
    if isinstance(classifier, nn.Linear):
        return network, "classifier"
    if isinstance(getattr(network, "fc", None), nn.Linear):
        return network, "fc"
    raise ValueError(f"cannot find the last layer of {type(network).__name__}: no .classifier or .fc")


def head_inputs(model: TransferModel, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """What ``model``'s backbone hands to its new last layer for each image of ``X``: its features (09).

    Computed in eval mode without gradients, on ``X``'s device. With a frozen backbone these
    features are the same at every training step, so feature extraction can compute them once
    and train ``model.head`` on them alone.
    """
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # not inference_mode: the head trains on these tensors afterwards
            for start in range(0, len(X), batch_size):
                model(X[start:start + batch_size])
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured)  # (N, head.in_features)


def random_init_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with fresh random weights (``reset_parameters`` of every layer).

    Uses PyTorch's global generator: call ``set_seed`` first for a reproducible copy.
    """
    fresh = copy.deepcopy(module)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()  # BatchNorm's also resets its running statistics
    return fresh


class TransferModel(nn.Module):
    """``preprocess``, then a copy of ``pretrained`` whose last layer is a new ``Linear`` for ``num_classes``.

    Everything but that last layer (the *head*, new random weights from the global generator)
    keeps the pretrained weights: the *backbone*. While every backbone parameter is frozen
    (``requires_grad = False``), ``train()`` keeps the backbone in eval mode, so its BatchNorm
    statistics stay as pretrained and its dropout is off.
    """

    def __init__(self, pretrained: nn.Module, num_classes: int, preprocess: nn.Module | None = None) -> None:
        super().__init__()
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.network = copy.deepcopy(pretrained)  # each model trains its own copy
        parent, name = last_layer(self.network)
        old = getattr(parent, name)
        if not isinstance(old, nn.Linear):
            raise ValueError(f"the last layer of {type(pretrained).__name__} is {old}, not a Linear layer")
        setattr(parent, name, nn.Linear(old.in_features, num_classes))

    @property
    def head(self) -> nn.Linear:
        """The new last layer."""
        parent, name = last_layer(self.network)
        return getattr(parent, name)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the head's: the pretrained ones."""
        head = {id(p) for p in self.head.parameters()}
        return (p for p in self.network.parameters() if id(p) not in head)

    def backbone_frozen(self) -> bool:
        """True when no backbone parameter will be trained."""
        return not any(p.requires_grad for p in self.backbone_parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(x))  # (B, C, H, W) -> (B, num_classes)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode and self.backbone_frozen():
            self.network.eval()
            self.head.train()
        return self
