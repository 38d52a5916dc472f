"""Classification metrics: a torchmetrics collection, plain accuracy, the worst mistakes (04_evaluate).

Accuracy is a fraction in [0, 1]. Averages over classes are named in the
metric's name (``f1_macro``), never left to a library default.
"""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

__all__ = ["accuracy", "make_classification_metrics", "most_confident_mistakes"]


def make_classification_metrics(num_classes: int) -> MetricCollection:
    """Accuracy (micro and macro), macro precision, recall and F1, and the confusion matrix (04_evaluate).

    One ``MetricCollection``, so ``.to(device)`` moves every metric with the
    model. Feed it batch by batch with ``update(logits_or_labels, labels)``,
    read it with ``compute()`` (a dict of tensors) and ``reset()`` it before
    reuse. ``accuracy_micro`` is correct / total; the ``_macro`` metrics are
    the unweighted mean over classes, so every class counts the same.

    >>> sorted(make_classification_metrics(10).keys())  # doctest: +NORMALIZE_WHITESPACE
    ['accuracy_macro', 'accuracy_micro', 'confusion_matrix', 'f1_macro', 'precision_macro',
     'recall_macro']
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number of 2 or more, got {num_classes!r}")
    return MetricCollection({
        "accuracy_micro": MulticlassAccuracy(num_classes, average="micro"),
        "accuracy_macro": MulticlassAccuracy(num_classes, average="macro"),
        "precision_macro": MulticlassPrecision(num_classes, average="macro"),
        "recall_macro": MulticlassRecall(num_classes, average="macro"),
        "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        "confusion_matrix": MulticlassConfusionMatrix(num_classes),
    })


def _check_pair(predictions: torch.Tensor, labels: torch.Tensor, what: str) -> None:
    if len(predictions) != len(labels):
        raise ValueError(f"{what} has {len(predictions)} rows but labels has {len(labels)}: they must match")
    if len(labels) == 0:
        raise ValueError(f"{what} and labels are empty: there is nothing to score")


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of predicted class labels (N,) equal to the true labels (N,), in [0, 1] (04_evaluate).

    >>> accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    0.75
    """
    if predictions.shape != labels.shape or predictions.dim() != 1:
        raise ValueError(
            f"accuracy takes predicted labels and true labels of the same shape (N,), got "
            f"{tuple(predictions.shape)} and {tuple(labels.shape)}: use logits.argmax(dim=1) first"
        )
    _check_pair(predictions, labels, "predictions")
    correct = (predictions == labels).sum().item()
    return correct / len(labels)


def most_confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` wrong predictions made with the highest probability, worst first (04_evaluate).

    ``probs`` holds class probabilities (N, C), for example ``logits.softmax(dim=1)``;
    ``labels`` the true classes (N,). Returns fewer than ``k`` indices when
    there are fewer mistakes, on the same device as ``probs``.
    """
    if probs.dim() != 2 or labels.dim() != 1:
        raise ValueError(f"probs must be (N, C) and labels (N,), got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    _check_pair(probs, labels, "probs")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a whole number of 0 or more, got {k!r}")
    sums = probs.sum(dim=1)
    if probs.min() < 0 or probs.max() > 1 or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError("probs are not probabilities (each row in [0, 1], summing to 1): "
                         "apply logits.softmax(dim=1) first")
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().squeeze(1)
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order[:k]]
