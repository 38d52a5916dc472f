"""Training and evaluation loops (written out in 03_train, imported from then on).

Losses and accuracies are exact per-example averages: the sum over all examples of each example's
loss, divided by the number of examples. Floating-point rounding aside, the result does not depend on
the batch sizes: a short last batch counts exactly as much as its examples. The loss's ``reduction``,
checked once at the start of each epoch, says what each example's loss is:

- ``"mean"`` (also assumed for a loss without a ``reduction`` attribute): the batch mean times the
  batch size is added, so an example with several values (pixels, outputs) counts with their mean;
- ``"sum"``: the batch sum is added, so an example counts with the sum of its values; with one value
  per example (class labels, a single regression output) this is the same average as ``"mean"``;
- ``"none"`` is refused with a ``ValueError``: training steps on one number per batch.

``nn.CrossEntropyLoss`` and ``nn.NLLLoss`` with class-index targets average the way their own mean
does, with either reduction: each target weighs ``weight[target]`` (1 without ``weight``), a target
equal to ``ignore_index`` weighs 0, and the loss is the weighted sum over the total weight. Without
``weight`` or ignored targets this is the per-example average above.

Accuracy is the fraction in [0, 1] of labelled (not ignored) examples whose largest output is the
label, computed only when the targets are class labels (1-D integers) and the outputs are 2-D.

A model wrapped in ``DistributedDataParallel`` (10_going_further) means that every process sees its
own share of the data: the sums are then added over all processes before dividing, so every process
gets the same exact average over all the examples, whatever the shares' sizes (``evaluate`` runs the
wrapped module, so the shares may also hold different numbers of batches, even none). Every process must then call
the function; the unwrapped ``model.module`` keeps the average to one process's data.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.std import tqdm

__all__ = ["EpochHook", "evaluate", "fit", "format_epoch", "predict", "predict_image", "train_one_epoch"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
EpochHook = Callable[[int, dict[str, float]], "bool | None"]


def _check_reduction(loss_fn: Callable[..., torch.Tensor]) -> str:
    """``loss_fn``'s reduction, checked once per epoch: every batch must give one number."""
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"loss_fn has reduction={reduction!r}, but train_one_epoch and evaluate need a loss "
                         "that returns one number per batch: use reduction='mean' or reduction='sum'")
    return reduction


class _Totals:
    """Running sums for the exact averages, read once at the end of the epoch.

    Reading a number from a GPU (``.item()``) makes Python wait until the GPU has caught up, so there the
    sums stay tensors on the device, added to batch by batch, and the loop never waits for them. On the CPU
    nothing waits, but each small tensor operation has a fixed cost that a small model's step notices: the
    sums are Python numbers (float64, as the tensors are), and the counting (targets kept, correct
    predictions) is done for up to ``HOST_GROUP`` batches at once, on their outputs and targets joined.
    Those tensors must not change after the loop has seen them (a loader or model that refills one
    buffer would need ``.clone()``). For a ``DistributedDataParallel`` model the sums are tensors and are
    added over the processes at the end (the one place of the per-example average).
    """

    HOST_GROUP = 64  # batches counted together on the CPU (fewer if their outputs reach 2**20 numbers)
    HOST_NUMBERS = 2**20

    def __init__(self, loss_fn: Callable[..., torch.Tensor], device: torch.device, model: nn.Module) -> None:
        self.across_processes = isinstance(model, DistributedDataParallel)  # each process has a share of the data
        self.mean = _check_reduction(loss_fn) == "mean"
        self.loss_fn = loss_fn
        self.class_weights = isinstance(loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss))  # their mean is weighted
        device = torch.device(device)
        self.on_host = device.type == "cpu" and not self.across_processes  # Python numbers: no wait to avoid
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64: float32 there
        self.loss_sum: torch.Tensor | float = 0.0 if self.on_host else torch.zeros((), dtype=dtype, device=device)
        self.weight_sum: torch.Tensor | float = 0.0 if self.on_host else torch.zeros((), dtype=dtype, device=device)
        self.correct: torch.Tensor | int = 0 if self.on_host else torch.zeros((), dtype=torch.int64, device=device)
        self.labelled: torch.Tensor | int = 0 if self.on_host else torch.zeros((), dtype=torch.int64, device=device)
        self.count = 0  # examples seen: len(y) is known without waiting for the device
        self.classes = True
        self.pending: list[tuple[float, torch.Tensor, torch.Tensor, int]] = []  # on the CPU: (loss, logits, y, len(y))
        self.pending_numbers = 0

    def _is_classes(self, logits: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether the batch is classification with class labels: the accuracy can be counted."""
        return y.dim() == 1 and logits.dim() == 2 and y.dtype in (torch.int64, torch.int32)

    def _labelled(self, y: torch.Tensor) -> torch.Tensor | None:
        """Which targets count (``None``: every example, one weight each): not ``ignore_index``, class indices only."""
        if self.class_weights and not y.is_floating_point():  # class indices, not class probabilities
            return y != self.loss_fn.ignore_index
        return None

    def _weight(self, y: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """The batch's total weight of kept targets under the loss's class ``weight``."""
        # the index must be a valid class even where the target is ignored
        return (self.loss_fn.weight[torch.where(kept, y, 0)] * kept).sum()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        size = len(y)
        self.count += size
        if self.on_host:
            numbers = logits.numel()
            if logits.untyped_storage().nbytes() > numbers * logits.element_size():
                logits = logits.clone()  # a view into a larger tensor: keep only its own numbers
            self.pending.append((loss.item(), logits, y, size))
            self.pending_numbers += numbers
            if len(self.pending) >= self.HOST_GROUP or self.pending_numbers >= self.HOST_NUMBERS:
                self._count_pending()
            return
        kept = self._labelled(y)
        n_kept = len(y) if kept is None else kept.sum()
        weight = n_kept if kept is None or self.loss_fn.weight is None else self._weight(y, kept)
        self.loss_sum += loss.to(self.loss_sum.dtype) * weight if self.mean else loss.to(self.loss_sum.dtype)
        self.weight_sum += weight
        if self.classes and self._is_classes(logits, y):
            hits = logits.argmax(dim=1) == y
            self.correct += (hits if kept is None else hits & kept).sum()
            self.labelled += n_kept
        else:
            self.classes = False

    def _count_pending(self) -> None:
        """Add the pending CPU batches to the sums: the same numbers as adding them one batch at a time."""
        pending, self.pending, self.pending_numbers = self.pending, [], 0
        if pending:
            self._count(pending)

    def _count(self, batches: list[tuple[float, torch.Tensor, torch.Tensor, int]]) -> None:
        """Add ``batches`` (loss, outputs, targets, size) to the sums, in order: joined, or one by one if need be."""
        losses, logits, ys, sizes = zip(*batches, strict=True)
        try:
            outputs, y = (torch.cat(logits), torch.cat(ys)) if len(batches) > 1 else (logits[0], ys[0])
        except RuntimeError:  # shapes that cannot be joined (images of several sizes, say)
            for batch in batches:
                self._count([batch])
            return
        kept = self._labelled(y)
        if kept is not None and self.loss_fn.weight is None and bool(kept.all()):
            kept = None  # nothing ignored: every example counts once
        n_kept = sizes if kept is None else [int(part.sum()) for part in kept.split(list(sizes))]
        if kept is None or self.loss_fn.weight is None:
            weights: Sequence[int] | list[float] = n_kept
        else:
            weights = [self._weight(part_y, part_kept).item()
                       for part_y, part_kept in zip(ys, kept.split(list(sizes)), strict=True)]
        for loss, weight in zip(losses, weights, strict=True):  # Python floats, added one batch at a time
            self.loss_sum += loss * weight if self.mean else loss
            self.weight_sum += weight
        if self.classes and self._is_classes(outputs, y):
            hits = outputs.max(dim=1).indices == y  # argmax(dim=1): the same first index of a tie, but faster
            self.correct += int((hits if kept is None else hits & kept).sum())
            self.labelled += sum(n_kept)
        else:
            self.classes = False

    def _add_other_processes(self) -> None:
        """Add every process's sums to this one's: all processes then hold the totals over all the data."""
        floats = torch.stack([self.loss_sum, self.weight_sum])
        counts = torch.stack([self.correct, self.labelled, torch.tensor(self.count, device=self.correct.device)])
        dist.all_reduce(floats)  # a sum over the processes
        dist.all_reduce(counts)
        self.loss_sum, self.weight_sum = floats
        self.correct, self.labelled, self.count = counts[0], counts[1], int(counts[2])

    def result(self, prefix: str) -> dict[str, float]:
        self._count_pending()
        if self.across_processes:
            self._add_other_processes()
        if self.count == 0:
            raise ValueError("the loader gave no batches: is the data set empty?")
        if self.on_host:
            loss_sum, weight_sum, correct, labelled = self.loss_sum, self.weight_sum, self.correct, self.labelled
        else:  # the epoch's one wait
            loss_sum, weight_sum = torch.stack([self.loss_sum, self.weight_sum]).tolist()
            correct, labelled = torch.stack([self.correct, self.labelled]).tolist()
        metrics = {f"{prefix}_loss": loss_sum / weight_sum if weight_sum else math.nan}  # all ignored: torch's nan
        if self.classes:
            metrics[f"{prefix}_acc"] = correct / labelled if labelled else math.nan
        return metrics


def train_one_epoch(
    model: nn.Module, loader: Batches, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> dict[str, float]:
    """One pass over ``loader`` with the six steps; returns ``train_loss`` (and ``train_acc``).

    Raises ``ValueError`` before any step if ``loss_fn`` does not reduce a batch to one number.
    """
    totals = _Totals(loss_fn, device, model)
    model.train()
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
    totals = _Totals(loss_fn, device, model)
    # under DDP, the wrapped module itself: DDP's forward can exchange buffers (BatchNorm's statistics) with the
    # other processes, which must then all call it; here a process's share may hold fewer batches, or none
    network = model.module if isinstance(model, DistributedDataParallel) else model
    model.eval()
    with torch.inference_mode():
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            logits = network(X)
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
    ``progress`` is ``"bar"`` (a progress bar where one can be redrawn: a widget in
    JupyterLab, a text bar in a terminal; one line per epoch elsewhere), ``"lines"``
    (one line per epoch) or ``"none"``. ``on_epoch_end(epoch, metrics)`` runs after every epoch
    (tracking, checkpointing, early stopping); returning ``True`` stops training.
    ``start_epoch`` numbers the epochs when resuming from a checkpoint.
    """
    if progress not in ("bar", "lines", "none"):
        raise ValueError(f"progress must be 'bar', 'lines' or 'none', got {progress!r}")
    style = _bar_style() if progress == "bar" else progress
    history: list[dict[str, float]] = []
    epochs_range = range(start_epoch, start_epoch + epochs)
    if style == "widget":
        from tqdm.notebook import tqdm as notebook_tqdm

        bar = notebook_tqdm(epochs_range, desc="epochs")
    else:
        bar = tqdm(epochs_range, desc="epochs", file=sys.stderr, mininterval=0.5, disable=style != "text")
    for epoch in bar:
        started = time.perf_counter()
        metrics: dict[str, float] = {"epoch": epoch}
        metrics.update(train_one_epoch(model, train_loader, loss_fn, optimizer, device))
        metrics.update(evaluate(model, eval_loader, loss_fn, device, prefix=eval_prefix))
        metrics["seconds"] = time.perf_counter() - started
        history.append(metrics)
        if style in ("widget", "text"):
            bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items() if k.endswith(("loss", "acc"))})
        elif style == "lines":
            print(format_epoch(metrics), flush=True)
        if on_epoch_end is not None and on_epoch_end(epoch, metrics):
            break
    bar.close()
    return history


def _bar_style() -> str:
    """How ``progress="bar"`` shows itself here: ``"widget"``, ``"text"`` or ``"lines"``.

    A widget in a notebook open in JupyterLab (with ipywidgets); a text bar redrawn in place
    in a terminal; elsewhere (papermill, ``make run``, output sent to a file) one line per
    epoch, since a redrawn bar would leave a fragment per redraw. Setting the environment
    variable ``COURSE_PROGRESS=lines`` (the series runner and the tests do, for kernels whose
    output nobody watches live) always gives lines.
    """
    if os.environ.get("COURSE_PROGRESS") == "lines":
        return "lines"
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":  # a Jupyter kernel
        return "widget" if importlib.util.find_spec("ipywidgets") else "lines"
    return "text" if sys.stderr.isatty() else "lines"


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


def predict_image(
    model: nn.Module, path: str | Path, transform: Callable[[Image.Image], torch.Tensor],
    class_names: Sequence[str], device: torch.device,
) -> tuple[str, float]:
    """Predicted class name and its probability for one image file (08_custom_datasets).

    The file may have any size and mode; it is read as RGB and passed through
    ``transform``, which must give the (C, H, W) tensor the model was trained
    on (resize included). ``model`` must already be on ``device``.
    """
    from helpers.vision import load_image  # here: vision imports torchvision, which fit does not need

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
