"""helpers.plots: every plot takes data and returns a matplotlib Figure; checked through the Figure's artists."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torchvision.transforms import v2

from helpers.plots import (
    plot_confusion_matrix,
    plot_image_grid,
    plot_loss_curves,
    plot_predictions,
)


def test_plot_predictions_has_three_series_with_predictions():
    X = torch.linspace(0, 1, 10).unsqueeze(1)
    fig = plot_predictions(X[:8], X[:8], X[8:], X[8:], predictions=X[8:] + 1)
    assert isinstance(fig, Figure) and len(fig.axes[0].collections) == 3
    assert len(plot_predictions(X[:8], X[:8], X[8:], X[8:]).axes[0].collections) == 2


def test_loss_curves_plot_loss_and_accuracy_per_split():
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 2 / e, "train_acc": 0.5, "test_acc": 0.4,
                "seconds": 0.1} for e in (1, 2, 3)]
    fig = plot_loss_curves(history)
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "test"]
    regression = plot_loss_curves([{"epoch": 1, "train_loss": 1.0, "test_loss": 1.0}])
    assert len(regression.axes) == 1


def test_image_grid_titles_and_colours_wrong_predictions():
    images = torch.rand(5, 1, 8, 8)
    fig = plot_image_grid(images, torch.tensor([0, 1, 2, 3, 4]), [str(i) for i in range(5)],
                          predictions=torch.tensor([0, 1, 2, 3, 0]), ncols=3)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 6 and len(titled) == 5
    assert titled[4].get_title() == "true 4\npred 0" and titled[4].title.get_color() == "tab:red"
    colour = plot_image_grid(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]), ["a", "b"])
    assert [ax.get_title() for ax in colour.axes] == ["a", "b"]


def test_standardised_colour_images_are_shown_in_their_true_colours():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 8, 8)  # (N, C, H, W) colours in [0, 1]
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    standardised = v2.Normalize(mean.tolist(), std.tolist())(images)
    assert standardised.min() < -1 and standardised.max() > 1
    fig = plot_image_grid(standardised, torch.tensor([0, 1, 0]), ["a", "b"], mean=mean.tolist(), std=std)
    for ax, image in zip(fig.axes, images, strict=True):
        np.testing.assert_allclose(ax.images[0].get_array(), image.permute(1, 2, 0).numpy(), atol=1e-6)


def test_colour_outside_0_1_is_refused_not_clipped():
    standardised = torch.linspace(-2, 2, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"colour images must lie in \[0, 1\] to be shown, and these range from "
                                         r"-2\.00 to 2\.00, as standardised images do: pass mean= and std="):
        plot_image_grid(standardised, torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="pass both mean and std"):
        plot_image_grid(standardised, torch.tensor([0, 1]), ["a", "b"], mean=[0.5, 0.5, 0.5])


def test_grey_images_are_shown_as_they_are_and_un_normalised_when_asked():
    images = torch.linspace(-3, 3, 2 * 16).reshape(2, 1, 4, 4)
    fig = plot_image_grid(images, torch.tensor([0, 1]), ["a", "b"])
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), images[1, 0].numpy())
    fig = plot_image_grid(images, torch.tensor([0, 1]), ["a", "b"], mean=[1.0], std=[2.0])
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), images[1, 0].numpy() * 2 + 1)


def test_confusion_matrix_shows_counts():
    matrix = torch.tensor([[5, 1], [0, 4]])
    texts = [t.get_text() for t in plot_confusion_matrix(matrix, ["cat", "dog"]).axes[0].texts]
    assert texts == ["5", "1", "0", "4"]


def test_normalised_confusion_matrix_shows_fractions():
    matrix = torch.tensor([[0.75, 0.25], [0.0, 1.0]])
    texts = [t.get_text() for t in plot_confusion_matrix(matrix, ["cat", "dog"]).axes[0].texts]
    assert texts == ["0.75", "0.25", "0.00", "1.00"]
