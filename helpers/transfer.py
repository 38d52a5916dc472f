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
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from helpers.checkpoint import CheckpointError, atomic_save, safe_load
from helpers.data import TensorPairDataset, load_digits, make_loaders, split_tensors
from helpers.device import make_generator, set_seed
from helpers.engine import fit
from helpers.models import TinyVGG
from helpers.paths import display_path

__all__ = [
    "IMAGENET_ARCH", "MAX_LABELLED_PER_CLASS", "SOURCE_DIGITS", "TARGET_DIGITS", "WEIGHTS_CHOICES",
    "ImageNetInput", "TransferModel", "WeightsUnavailableError", "cached_weights_path",
    "fetch_imagenet_state_dict", "few_labelled_split", "imagenet_backbone", "load_pretrained_backbone",
    "pretrain_source_backbone", "random_init_copy", "select_digits",
]

WEIGHTS_CHOICES = ("auto", "self")
IMAGENET_ARCH = "mobilenet_v3_small"  # 2.5 M parameters, a 10 MB download: small and accurate
SOURCE_DIGITS = (0, 1, 2, 3, 4)
TARGET_DIGITS = (5, 6, 7, 8, 9)
MAX_LABELLED_PER_CLASS = 87  # digit 8 has 174 images: half are test images, the other 87 can be labelled


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither in the ``torch.hub`` cache nor downloadable; the message says why."""


def select_digits(X: torch.Tensor, y: torch.Tensor, digits: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``digits`` only, relabelled 0, 1, ... in the order given (digit 5 -> 0, ...)."""
    keep = torch.isin(y, torch.tensor(list(digits)))
    new_label = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    new_label[list(digits)] = torch.arange(len(digits))
    return X[keep], new_label[y[keep]]


def few_labelled_split(
    X: torch.Tensor, y: torch.Tensor, per_class: int, seed: int = 0, test_fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X_labelled, y_labelled, X_test, y_test``: ``per_class`` labelled examples of each class.

    Each class is shuffled with a seeded generator; its first ``test_fraction``
    become test images, the next ``per_class`` the labelled training examples.
    The test set does not depend on ``per_class``, so runs with more or fewer
    labels are compared on the same images.
    """
    generator = make_generator(seed)
    labelled, test = [], []
    for label in range(int(y.max()) + 1):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(len(members) * test_fraction)
        if per_class < 1 or n_test + per_class > len(members):
            raise ValueError(
                f"cannot take {per_class} labelled examples of class {label}: it has "
                f"{len(members) - n_test} images besides its test images (ask for 1 to {len(members) - n_test})"
            )
        test.append(members[:n_test])
        labelled.append(members[n_test:n_test + per_class])
    labelled_idx, test_idx = torch.cat(labelled), torch.cat(test)
    return X[labelled_idx], y[labelled_idx], X[test_idx], y[test_idx]


class ImageNetInput(nn.Module):
    """Grey images to 3 channels, then the weights' own preprocessing (``weights.transforms()``)."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W): the same grey in R, G and B
        return self.transform(x)  # resize, centre crop, normalise with ImageNet's mean and std


def imagenet_backbone(arch: str, weights: Any, state_dict: dict[str, torch.Tensor] | None) -> nn.Module:
    """A torchvision ``arch`` without its classifier, preceded by ``weights.transforms()``.

    ``state_dict`` holds the pretrained weights (``None``: random weights).
    The result maps images (B, 1 or 3, H, W) in [0, 1] to features (B, F).
    """
    model = get_model(arch, weights=None)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    if hasattr(model, "fc"):  # ResNets
        model.fc = nn.Identity()
    elif hasattr(model, "classifier"):  # MobileNets, EfficientNets, ...
        model.classifier = nn.Identity()
    else:
        raise ValueError(f"do not know where the classifier of {arch!r} is (no .fc or .classifier)")
    return nn.Sequential(ImageNetInput(weights.transforms()), model)


def cached_weights_path(weights: Any) -> Path:
    """Where ``torch.hub`` keeps the file of ``weights``: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _check_reachable(url: str, timeout: float) -> None:
    """Raise ``OSError`` unless the server of ``url`` answers within about ``timeout`` seconds."""
    outcome: dict[str, Any] = {}

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                outcome["ok"] = True
        except urllib.error.HTTPError:  # the server answered (maybe refusing HEAD): let the download decide
            outcome["ok"] = True
        except Exception as error:  # no answer: not downloadable now
            outcome["error"] = error

    thread = threading.Thread(target=probe, daemon=True)  # a thread: a hanging name lookup cannot block us
    thread.start()
    thread.join(timeout + 0.5)
    if "ok" not in outcome:
        reason = outcome.get("error") or f"no answer within {timeout:g} s"
        raise OSError(f"no connection to {urlparse(url).hostname}: {reason}")


def _download(url: str, destination: Path, timeout: float) -> None:
    """Download ``url`` to ``destination`` (hash checked); fail within seconds when offline."""
    _check_reachable(url, timeout)
    found = torch.hub.HASH_REGEX.search(destination.name)
    destination.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a stalled connection gives up instead of hanging
    try:
        torch.hub.download_url_to_file(url, str(destination), found.group(1) if found else None, progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def fetch_imagenet_state_dict(weights: Any, download: bool = True, timeout: float = 5.0) -> dict[str, Any]:
    """The state dict of torchvision ``weights``: from the cache, else downloaded into it.

    Raises :class:`WeightsUnavailableError` saying why when neither works.
    """
    path = cached_weights_path(weights)
    if not path.is_file():
        if not download:
            raise WeightsUnavailableError(f"{weights} is not in the torch.hub cache ({display_path(path)})")
        try:
            _download(weights.url, path, timeout)
        except Exception as error:  # offline, proxy, bad hash, full disk: all mean "not available"
            raise WeightsUnavailableError(
                f"{weights} is not in the torch.hub cache ({display_path(path.parent)}) and could not be downloaded "
                f"({error}); to use it offline, put {path.name} from {weights.url} in that folder"
            ) from None
    try:
        return safe_load(path)
    except Exception as error:  # a damaged file can fail in many ways (not all are CheckpointError)
        raise WeightsUnavailableError(f"{weights} in the cache cannot be used: {error!r}") from None


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
    source_epochs: int = 5, arch: str = IMAGENET_ARCH, download_timeout: float = 5.0,
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
            state_dict = fetch_imagenet_state_dict(imagenet, timeout=download_timeout)
            return imagenet_backbone(arch, imagenet, state_dict), (
                f"ImageNet-pretrained {arch} ({imagenet})\n"
                f"Loaded torchvision's {imagenet} from {cached_weights_path(imagenet).parent}.")
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

