"""Training and evaluation loops (written out in 03_train, imported from then on).

Losses and accuracies are exact per-example averages: each batch's mean loss
is weighted by its size, so a short last batch counts exactly as much as its
examples. Accuracy is a fraction in [0, 1] and is only computed when the
targets are class labels (integers).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm.std import tqdm

__all__ = ["EpochHook", "evaluate", "fit", "format_epoch", "predict", "train_one_epoch"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
EpochHook = Callable[[int, dict[str, float]], "bool | None"]


_READ_EVERY = 64  # batches whose outputs wait on the device before one read: bounds memory, rare syncs


class _Totals:
    """Running sums that give exact per-example means.

    Reading a number from a GPU (``.item()``) makes Python wait until the GPU has caught up; once
    per batch, that stalls the queue of work. So each batch's mean loss, outputs and labels stay on
    the device and are read together, every ``_READ_EVERY`` batches and at the end: one ``argmax``
    over all of them instead of one per batch. The loss sums are formed in the same order as one
    read per batch would form them, so the results are identical to the last bit.
    """

    def __init__(self) -> None:
        self.loss_sum, self.correct, self.count = 0.0, 0, 0
        self.classes = True
        self.losses: list[torch.Tensor] = []  # batch mean losses, not read yet
        self.sizes: list[int] = []
        self.outputs: list[torch.Tensor] = []  # (B, num_classes) per batch, for accuracy
        self.labels: list[torch.Tensor] = []  # (B,) per batch

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss if loss.dim() == 0 else loss.reshape(()))  # a mean-reduced loss: one value
        self.sizes.append(len(y))
        if self.classes and y.dim() == 1 and logits.dim() == 2 and y.dtype in (torch.int64, torch.int32):
            self.outputs.append(logits)
            self.labels.append(y)
        else:
            self.classes = False
        if len(self.sizes) >= _READ_EVERY:
            self._read()

    def _read(self) -> None:
        if not self.sizes:
            return
        for loss, n in zip(torch.stack(self.losses).tolist(), self.sizes, strict=True):
            self.loss_sum += loss * n
        self.count += sum(self.sizes)
        if self.classes:
            predicted = torch.cat(self.outputs).argmax(dim=1)
            self.correct += int((predicted == torch.cat(self.labels)).sum())
        self.losses, self.sizes, self.outputs, self.labels = [], [], [], []

    def result(self, prefix: str) -> dict[str, float]:
        self._read()
        if self.count == 0:
            raise ValueError("the loader gave no batches: is the data set empty?")
        metrics = {f"{prefix}_loss": self.loss_sum / self.count}
        if self.classes:
            metrics[f"{prefix}_acc"] = self.correct / self.count
        return metrics


def train_one_epoch(
    model: nn.Module, loader: Batches, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> dict[str, float]:
    """One pass over ``loader`` with the six steps; returns ``train_loss`` (and ``train_acc``)."""
    model.train()
    totals = _Totals()
    for X, y in loader:
        X, y = X.to(device), y.to(device)
        logits = model(X)                # 1. forward
        loss = loss_fn(logits, y)        # 2. loss
        optimizer.zero_grad()            # 3. clear old gradients
        loss.backward()                  # 4. backward
        optimizer.step()                 # 5. update
        totals.add(loss.detach(), logits.detach(), y)
    return totals.result("train")


def evaluate(
    model: nn.Module, loader: Batches, loss_fn: nn.Module, device: torch.device, prefix: str = "test"
) -> dict[str, float]:
    """Loss (and accuracy) over ``loader`` in eval mode without gradients; parameters stay untouched."""
    model.eval()
    totals = _Totals()
    with torch.inference_mode():
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            logits = model(X)
            totals.add(loss_fn(logits, y), logits, y)
    return totals.result(prefix)


def fit(
    model: nn.Module, train_loader: Batches, eval_loader: Batches, loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer, epochs: int, device: torch.device,
    on_epoch_end: EpochHook | None = None, progress: str = "bar", eval_prefix: str = "test",
    start_epoch: int = 1,
) -> list[dict[str, float]]:
    """Train for ``epochs`` epochs, evaluating after each; return the per-epoch history.

    Each history entry holds ``epoch``, ``train_loss``, ``{eval_prefix}_loss``,
    the accuracies when the targets are class labels, and ``seconds``.
    ``progress`` is ``"bar"`` (a progress bar), ``"lines"`` (one line per epoch)
    or ``"none"``. ``on_epoch_end(epoch, metrics)`` runs after every epoch
    (tracking, checkpointing, early stopping); returning ``True`` stops training.
    ``start_epoch`` numbers the epochs when resuming from a checkpoint.
    """
    if progress not in ("bar", "lines", "none"):
        raise ValueError(f"progress must be 'bar', 'lines' or 'none', got {progress!r}")
    history: list[dict[str, float]] = []
    epochs_range = range(start_epoch, start_epoch + epochs)
    bar = tqdm(epochs_range, desc="epochs", file=sys.stderr, ncols=90, mininterval=0.5,
               disable=progress != "bar")
    for epoch in bar:
        started = time.perf_counter()
        metrics: dict[str, float] = {"epoch": epoch}
        metrics.update(train_one_epoch(model, train_loader, loss_fn, optimizer, device))
        metrics.update(evaluate(model, eval_loader, loss_fn, device, prefix=eval_prefix))
        metrics["seconds"] = time.perf_counter() - started
        history.append(metrics)
        if progress == "bar":
            bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k.endswith(("loss", "acc"))})
        elif progress == "lines":
            print(format_epoch(metrics))
        if on_epoch_end is not None and on_epoch_end(epoch, metrics):
            break
    bar.close()
    return history


def format_epoch(metrics: dict[str, float]) -> str:
    """One fixed-format line for an epoch's metrics, accuracies as percentages."""
    parts = [f"epoch {int(metrics['epoch']):3d}"]
    for key, value in metrics.items():
        if key.endswith("_loss"):
            parts.append(f"{key} {value:.4f}")
        elif key.endswith("_acc"):
            parts.append(f"{key} {value:6.2%}")
    return " | ".join(parts)


def predict(model: nn.Module, data: torch.Tensor | Batches, device: torch.device) -> torch.Tensor:
    """Raw model outputs (logits) for a tensor or a loader of ``(X, y)`` batches, on the CPU."""
    model.eval()
    batches = [(data, None)] if isinstance(data, torch.Tensor) else data
    outputs = []
    with torch.inference_mode():
        for X, _ in batches:
            outputs.append(model(X.to(device)).cpu())
    return torch.cat(outputs)
