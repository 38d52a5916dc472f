"""Training several models side by side and timing them fairly (introduced in 07_computer_vision).

:func:`train_and_time` is the timing function written out in 07; :func:`compare_models`
runs it for each model on the same data, seed and device.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import TensorDataset

from helpers.data import make_loaders
from helpers.device import set_seed, synchronize
from helpers.engine import Batches, fit
from helpers.models import count_parameters
from helpers.vision import ImageData

__all__ = ["compare_models", "train_and_time"]


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
