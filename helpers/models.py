"""Models used across the series (02_model, 07_computer_vision, 09_transfer_learning)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MODELS", "MLP", "LinearRegression", "TinyVGG", "build_model", "count_parameters"]

MODELS = ("tinyvgg", "mlp")  # the names build_model knows


class LinearRegression(nn.Module):
    """``y = weight * x + bias`` with hand-made parameters (written out in 02_model).

    Same arithmetic as ``nn.Linear(1, 1)``; a test checks the two agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x + self.bias


class MLP(nn.Module):
    """Flatten, then ``num_hidden_layers`` blocks of Linear + ReLU, then a Linear classifier (02_model).

    ``in_features`` is the number of values per example after flattening
    (64 for an 8x8 grey image).
    """

    def __init__(
        self, in_features: int, hidden_units: int, num_classes: int,
        num_hidden_layers: int = 1, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_units), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden_units
        layers.append(nn.Linear(width, num_classes))
        self.in_features = in_features
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x[0].numel() if x.dim() > 1 else x.numel()
        if features != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} values per example, got input of shape "
                f"{tuple(x.shape)} ({features} per example): check in_features or the input size"
            )
        return self.layers(x)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions (size kept by padding) with ReLU, then 2x2 max pooling (halves H and W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class TinyVGG(nn.Module):
    """A small VGG-style CNN that works for any input size of at least 4x4 (02_model, 07).

    Two conv blocks halve the height and width twice; adaptive average pooling
    then brings any remaining size down to ``pooled_size`` x ``pooled_size``, so
    the classifier's size does not depend on the image size.
    """

    def __init__(
        self, in_channels: int, hidden_units: int, num_classes: int, pooled_size: int = 2
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            _conv_block(in_channels, hidden_units),
            _conv_block(hidden_units, hidden_units),
            nn.AdaptiveAvgPool2d(pooled_size),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(hidden_units * pooled_size * pooled_size, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or min(x.shape[-2:]) < 4:
            raise ValueError(
                f"TinyVGG expects images of shape (batch, {self.in_channels}, H, W) with H and W "
                f"at least 4, got {tuple(x.shape)}"
            )
        return self.classifier(self.features(x))  # (B, C, H, W) -> (B, num_classes)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values in ``model`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_model(name: str, hidden_units: int, in_channels: int = 1, image_size: int = 8,
                num_classes: int = 10) -> nn.Module:
    """A fresh ``TinyVGG`` or ``MLP`` by name (10_going_further); initial weights come from the global seed."""
    if name == "tinyvgg":
        return TinyVGG(in_channels, hidden_units, num_classes)
    if name == "mlp":
        return MLP(in_channels * image_size * image_size, hidden_units, num_classes)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
