"""Transfer learning: pretrained backbones, a new head, freezing (introduced in 09_transfer_learning).

A *backbone* turns images into feature vectors; a new *head* turns features
into the classes of the target task. :func:`load_pretrained_backbone` gives a
backbone pretrained on a large source task:

- with ``weights="auto"``, torchvision's ImageNet weights when they are in the
  ``torch.hub`` cache or can be downloaded (an offline machine fails fast);
- otherwise (or with ``weights="self"``), a ``TinyVGG`` that this module
  pretrains itself on the *source task*, handwritten digits 0-4, saved as a
  state dict and reused on the next run with the same configuration.

The *target task* is digits 5-9 with only a few labelled examples per class.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from helpers.checkpoint import CheckpointError, atomic_save, safe_load
from helpers.data import TensorPairDataset, load_digits, make_loaders, select_digits, split_tensors
from helpers.device import set_seed
from helpers.downloads import WeightsUnavailableError, cached_weights_path, fetch_weights
from helpers.engine import fit
from helpers.models import TinyVGG
from helpers.paths import display_path

__all__ = [
    "IMAGENET_ARCH", "MAX_LABELLED_PER_CLASS", "SOURCE_DIGITS", "TARGET_DIGITS", "WEIGHTS_CHOICES",
    "ImageNetInput", "TransferModel", "imagenet_backbone", "load_pretrained_backbone",
    "pretrain_source_backbone", "random_init_copy",
]

WEIGHTS_CHOICES = ("auto", "self")
IMAGENET_ARCH = "mobilenet_v3_small"  # 2.5 M parameters, a 10 MB download: small and accurate
SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)
MAX_LABELLED_PER_CLASS = 87  # digit 8 has 174 images: half are test images, the other 87 can be labelled


class ImageNetInput(nn.Module):
    """Grey images to 3 channels, then the weights' own preprocessing (``weights.transforms()``)."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W): the same grey in R, G and B
        return self.transform(x)  # resize, centre crop, normalise with ImageNet's mean and std


def imagenet_backbone(arch: str, weights: Any, pretrained: bool = True) -> nn.Module:
    """torchvision's ``arch`` without its classifier, preceded by ``weights.transforms()``.

    With ``pretrained``, the model is built the usual way, ``get_model(arch, weights=weights)``
    (for MobileNet V3 small the same as ``mobilenet_v3_small(weights=weights)``), after
    :func:`helpers.downloads.fetch_weights` has put the file in the ``torch.hub`` cache and
    checked it loads with ``weights_only=True``. Otherwise the weights are random.
    The result maps images (B, 1 or 3, H, W) in [0, 1] to features (B, F).
    """
    if pretrained:
        fetch_weights(weights)  # cached (or downloaded) and checked safe before the constructor loads it
    model = get_model(arch, weights=weights if pretrained else None)
    if hasattr(model, "fc"):  # ResNets
        model.fc = nn.Identity()
    elif hasattr(model, "classifier"):  # MobileNets, EfficientNets, ...
        model.classifier = nn.Identity()
    else:
        raise ValueError(f"do not know where the classifier of {arch!r} is (no .fc or .classifier)")
    return nn.Sequential(ImageNetInput(weights.transforms()), model)


def _pretrain_config(hidden_units: int, seed: int, epochs: int, device: torch.device) -> dict[str, Any]:
    return {"model": "TinyVGG", "in_channels": 1, "hidden_units": hidden_units, "source": "digits",
            "source_digits": list(SOURCE_DIGITS), "epochs": epochs, "batch_size": 32,
            "learning_rate": 0.003, "seed": seed, "device": device.type}


def _read_saved(path: Path) -> dict[str, Any] | None:
    """The saved pretraining file, or None when there is none or it cannot be read (then we pretrain again)."""
    try:
        saved = safe_load(path)
    except (CheckpointError, OSError):  # damaged: pretrain again and overwrite it
        return None
    return saved if isinstance(saved, dict) else None


def pretrain_source_backbone(
    save_dir: Path, device: torch.device, hidden_units: int = 16, seed: int = 0, epochs: int = 5
) -> tuple[nn.Module, str]:
    """``TinyVGG.features`` pretrained on digits 0-4 (returned on the CPU), and how it was obtained.

    The weights are saved in ``save_dir`` under a name derived from the
    configuration, and loaded from there (``weights_only=True``) when present.
    """
    config = _pretrain_config(hidden_units, seed, epochs, device)
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    path = Path(save_dir) / f"tinyvgg_digits0-4_{key}.pt"
    saved = _read_saved(path)
    if saved is not None and saved.get("config") == config:
        model = TinyVGG(1, hidden_units, len(SOURCE_DIGITS))
        model.features.load_state_dict(saved["features"])
        return model.features, (f"loaded from {path.name}, saved by an earlier run with the same "
                                f"configuration (source test accuracy {saved['source_acc']:.1%})")
    started = time.perf_counter()
    X, y = select_digits(*load_digits(), SOURCE_DIGITS)
    X_train, X_test, y_train, y_test = split_tensors(X, y, test_fraction=0.2, seed=seed)
    set_seed(seed)
    model = TinyVGG(1, hidden_units, len(SOURCE_DIGITS)).to(device)
    train_loader, test_loader = make_loaders(TensorPairDataset(X_train, y_train),
                                             TensorPairDataset(X_test, y_test), config["batch_size"], seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    history = fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs, device,
                  progress="none")
    features = model.features.cpu()
    source_acc = history[-1]["test_acc"]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    atomic_save({"config": config, "features": features.state_dict(), "source_acc": source_acc}, path)
    return features, (f"trained now on {len(X_train)} images for {epochs} epoch{'s' * (epochs != 1)} in "
                      f"{time.perf_counter() - started:.1f} s (source test accuracy {source_acc:.1%}) "
                      f"and saved as {path.name}")


def load_pretrained_backbone(
    weights: str, save_dir: Path, device: torch.device, hidden_units: int = 16, seed: int = 0,
    source_epochs: int = 5, arch: str = IMAGENET_ARCH,
) -> tuple[nn.Module, str]:
    """A pretrained backbone (on the CPU) and a description of where it comes from.

    ``weights="auto"``: torchvision's ImageNet weights for ``arch`` if cached or
    downloadable, else the self-pretrained ``TinyVGG`` backbone; ``"self"``:
    always the self-pretrained one. The description's first line names the
    source in a few words; the rest explains, including why ImageNet weights
    were not used.
    """
    if weights not in WEIGHTS_CHOICES:
        raise ValueError(f"weights must be one of {', '.join(map(repr, WEIGHTS_CHOICES))}, got {weights!r}")
    why = "WEIGHTS = 'self' asks for the backbone that this series pretrains itself."
    if weights == "auto":
        imagenet = get_model_weights(arch).DEFAULT
        try:
            return imagenet_backbone(arch, imagenet), (
                f"ImageNet-pretrained {arch} ({imagenet})\n"
                f"Loaded torchvision's {imagenet} from {display_path(cached_weights_path(imagenet).parent)}.")
        except WeightsUnavailableError as error:
            why = f"ImageNet weights are not available: {error}."
    backbone, how = pretrain_source_backbone(save_dir, device, hidden_units, seed, source_epochs)
    return backbone, (f"self-pretrained TinyVGG (source task: digits 0-4)\n{why}\n"
                      f"So the backbone is a TinyVGG that this series pretrained itself on the source "
                      f"task, handwritten digits 0-4: {how}.")


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
    """A copy of a pretrained ``backbone`` plus a new ``head`` for ``num_classes`` classes.

    The head is ``Linear -> ReLU -> Linear`` on the backbone's features; their
    number is found with one forward pass of ``example`` (a batch of inputs).
    While every backbone parameter is frozen (``requires_grad = False``),
    ``train()`` keeps the backbone in eval mode, so its BatchNorm statistics
    stay as pretrained too.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, example: torch.Tensor, head_hidden: int = 64) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(backbone)  # each model trains its own copy
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            num_features = self.backbone(example[:1]).flatten(1).shape[1]
        self.backbone.train(was_training)
        self.num_features = num_features
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(num_features, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))  # (B, C, H, W) -> (B, F) -> (B, num_classes)

    def backbone_frozen(self) -> bool:
        """True when no backbone parameter will be trained."""
        return not any(p.requires_grad for p in self.backbone.parameters())

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode and self.backbone_frozen():
            self.backbone.eval()
        return self

