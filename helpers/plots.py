"""Plots that take data and return a ``matplotlib.figure.Figure`` (01_data onwards).

Figures are built without pyplot's global state, so nothing is drawn twice and
nothing leaks between cells. A notebook runs ``%matplotlib inline`` once and
shows a figure by ending a cell with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "plot_confusion_matrix",
    "plot_image_grid",
    "plot_loss_curves",
    "plot_predictions",
]


def plot_predictions(
    X_train: torch.Tensor, y_train: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor,
    predictions: torch.Tensor | None = None,
) -> Figure:
    """Training and test points of a 1-D regression, with the model's test predictions if given."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.scatter(X_train.cpu(), y_train.cpu(), s=8, c="tab:blue", label="training data")
    # hollow rings: where test points fall among training points, both stay visible
    ax.scatter(X_test.cpu(), y_test.cpu(), s=24, facecolors="none", edgecolors="tab:green", label="test data")
    if predictions is not None:
        ax.scatter(X_test.cpu(), predictions.detach().cpu(), s=8, c="tab:red", label="predictions")
    ax.set(xlabel="x", ylabel="y")
    ax.legend()
    return fig


def plot_loss_curves(history: Sequence[dict[str, float]]) -> Figure:
    """Loss (and accuracy, when present) per epoch for every split in a ``fit`` history."""
    if not history:
        raise ValueError("history is empty: train for at least one epoch first")
    kinds = [kind for kind in ("loss", "acc") if any(k.endswith("_" + kind) for k in history[0])]
    fig = Figure(figsize=(5.5 * len(kinds), 4))
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    epochs = [entry["epoch"] for entry in history]
    for ax, kind in zip(axes, kinds, strict=True):
        for key in (k for k in history[0] if k.endswith("_" + kind)):
            ax.plot(epochs, [entry[key] for entry in history], marker=".", label=key.split("_")[0])
        ax.set(xlabel="epoch", ylabel="accuracy" if kind == "acc" else "loss",
               title="Accuracy" if kind == "acc" else "Loss")
        ax.legend()
    fig.tight_layout()
    return fig


def _for_display(
    images: torch.Tensor, mean: Sequence[float] | torch.Tensor | None, std: Sequence[float] | torch.Tensor | None,
) -> np.ndarray:
    """(N, C, H, W) images -> (N, H, W) grey or (N, H, W, C) colour arrays for ``imshow``, un-normalised.

    With ``mean`` and ``std`` (per channel, as given to ``v2.Normalize``), ``image * std + mean``
    undoes the standardising. Colour must then lie in [0, 1]: ``imshow`` would clip anything else,
    showing wrong colours, so such images are refused with a ``ValueError`` saying what to pass.
    """
    array = images.detach().cpu().float()
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std (the per-channel values the images were standardised with), "
                         "or neither")
    if mean is not None:  # (C, 1, 1) broadcasts over (N, C, H, W)
        array = (array * torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
                 + torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1))
    if array.shape[1] == 1:
        return array[:, 0].numpy()  # grey: imshow scales each image to its own range
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:  # a little float rounding from un-normalising is fine
        raise ValueError(
            f"colour images must lie in [0, 1] to be shown, and these range from {low:.2f} to {high:.2f}, as "
            "standardised images do: pass mean= and std=, the per-channel values they were standardised with")
    return array.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def plot_image_grid(
    images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
    predictions: torch.Tensor | None = None, ncols: int = 8, title: str | None = None,
    mean: Sequence[float] | torch.Tensor | None = None, std: Sequence[float] | torch.Tensor | None = None,
) -> Figure:
    """Images (N, C, H, W) in a grid titled by label; with predictions, wrong ones in red.

    Standardised images are shown in their true colours when ``mean`` and ``std`` (per channel,
    as given to ``v2.Normalize``) are passed: each is un-normalised for display only.
    """
    shown = _for_display(images, mean, std)
    n = len(images)
    nrows = max(1, -(-n // ncols))
    row_height = 1.5 if predictions is None else 1.9  # two-line titles need room above each image
    fig = Figure(figsize=(1.3 * min(n, ncols), row_height * nrows + (0.4 if title else 0)))
    axes = np.atleast_1d(fig.subplots(nrows, min(n, ncols))).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(shown[i], cmap="gray_r")
        true_name = class_names[int(labels[i])]
        if predictions is None:
            ax.set_title(true_name, fontsize=9)
        else:
            predicted = class_names[int(predictions[i])]
            ax.set_title(f"true {true_name}\npred {predicted}", fontsize=8,
                         color="tab:green" if predicted == true_name else "tab:red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted class) with counts in each cell."""
    counts = matrix.detach().cpu().numpy()
    fig = Figure(figsize=(0.6 * len(class_names) + 2, 0.6 * len(class_names) + 1.5))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true", title="Confusion matrix")
    threshold = counts.max() / 2
    for i in ticks:
        for j in ticks:
            label = f"{counts[i, j]:.2f}" if counts.dtype.kind == "f" else str(int(counts[i, j]))  # normalised
            ax.text(j, i, label, ha="center", va="center", fontsize=8,
                    color="white" if counts[i, j] > threshold else "black")
    fig.tight_layout()
    return fig
