"""helpers.compare: training and timing several models side by side (07_computer_vision)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import helpers.compare as compare
from helpers.compare import compare_models, format_comparison, train_and_time
from helpers.data import make_loaders
from helpers.device import set_seed
from helpers.engine import fit
from helpers.models import MLP
from helpers.vision import ImageData

CPU = torch.device("cpu")


def separable_image_data(n_train: int = 48, n_test: int = 24, seed: int = 0) -> ImageData:
    """6x6 grey images, classes alternating: 'dark' pixels in [0, 0.5), 'light' ones in [0.5, 1).

    A model that learns anything separates them perfectly; chance is 50 %.
    """
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n_train + n_test) % 2
    X = 0.5 * torch.rand(n_train + n_test, 1, 6, 6, generator=generator) + 0.5 * y.view(-1, 1, 1, 1)
    return ImageData(X[:n_train], y[:n_train], X[n_train:], y[n_train:], ["dark", "light"])


def loaders(data: ImageData, batch_size: int = 8, seed: int = 0):
    return make_loaders(TensorDataset(data.X_train, data.y_train), TensorDataset(data.X_test, data.y_test),
                        batch_size, seed=seed)


def test_train_and_time_learns_an_easy_task_well_above_chance():
    set_seed(0)
    model = MLP(36, 8, 2)
    history, seconds = train_and_time(model, *loaders(separable_image_data()), epochs=10, learning_rate=0.01,
                                      device=CPU)
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert history[-1]["test_acc"] >= 0.95  # chance is 0.5
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    # the clock encloses every epoch fit timed, and little else
    epochs_total = sum(h["seconds"] for h in history)
    assert epochs_total <= seconds < epochs_total + 1.0


class SlowFirstCall(nn.Module):
    """A linear model whose first forward pass takes 0.5 s, like a GPU paying for its start-up."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
        self.calls: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.calls:
            time.sleep(0.5)
        self.calls.append((self.training, x))
        return self.linear(x)


def test_the_warm_up_pass_runs_before_the_clock_in_eval_mode_on_a_test_batch():
    data = separable_image_data()
    model = SlowFirstCall()
    test_batches = [(data.X_test[:5], data.y_test[:5])]
    history, seconds = train_and_time(model, [(data.X_train, data.y_train)], test_batches, 1, 0.01, CPU)
    first_training, first_input = model.calls[0]
    assert not first_training and torch.equal(first_input, data.X_test[:5])
    assert len(model.calls) == 1 + 2  # warm-up, one training batch, one test batch
    assert seconds < 0.5  # the slow first call is not charged to the model
    assert seconds >= history[0]["seconds"]


def test_compare_models_rows_are_what_an_independent_seeded_run_gives(monkeypatch):
    builders = {"linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 2)), "mlp": lambda: MLP(36, 4, 2)}
    timed = []

    def recording(*args, **kwargs):
        timed.append(train_and_time(*args, **kwargs))
        return timed[-1]

    monkeypatch.setattr(compare, "train_and_time", recording)
    rows = compare_models(builders, separable_image_data(), epochs=3, batch_size=8, learning_rate=0.01,
                          device=CPU, seed=5)
    assert [r["model"] for r in rows] == ["linear", "mlp"]
    assert [r["parameters"] for r in rows] == [36 * 2 + 2, (36 * 4 + 4) + (4 * 2 + 2)]
    assert [r["device"] for r in rows] == ["cpu", "cpu"]
    assert [r["seconds"] for r in rows] == [seconds for _, seconds in timed]
    assert [r["test_acc"] for r in rows] == [history[-1]["test_acc"] for history, _ in timed]

    # the same training done by hand: seed, build, seeded loaders, Adam, fit
    for row, build in zip(rows, builders.values(), strict=True):
        set_seed(5)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        history = fit(model, *loaders(separable_image_data(), seed=5), nn.CrossEntropyLoss(), optimizer, 3, CPU,
                      progress="none")
        assert row["test_acc"] == history[-1]["test_acc"]


def test_compare_models_is_reproducible_and_each_model_gets_the_same_seed():
    build = {"a": lambda: MLP(36, 4, 2), "b": lambda: MLP(36, 4, 2)}
    rows = compare_models(build, separable_image_data(), epochs=2, batch_size=8, learning_rate=0.01, device=CPU,
                          seed=3)
    again = compare_models(build, separable_image_data(), epochs=2, batch_size=8, learning_rate=0.01, device=CPU,
                           seed=3)
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in rows]
    assert rows[0]["test_acc"] == rows[1]["test_acc"]  # same architecture, same seed: the same run


def test_format_comparison_is_one_table_with_percentages_and_thousands():
    rows = [{"model": "linear", "test_acc": 0.9081, "parameters": 650, "seconds": 1.234, "device": "cpu"},
            {"model": "tinyvgg", "test_acc": 0.95, "parameters": 7770, "seconds": 12.0, "device": "cpu"}]
    assert format_comparison(rows) == (
        "model    test acc  parameters  train s  device\n"
        "-------  --------  ----------  -------  ------\n"
        "linear     90.81%         650     1.23  cpu\n"
        "tinyvgg    95.00%       7,770    12.00  cpu"
    )


def test_format_comparison_refuses_timings_from_different_devices():
    rows = [{"model": "a", "test_acc": 0.5, "parameters": 1, "seconds": 1.0, "device": "cpu"},
            {"model": "b", "test_acc": 0.5, "parameters": 1, "seconds": 1.0, "device": "cuda:0"}]
    with pytest.raises(ValueError, match=r"timings from different devices cannot be compared: \['cpu', 'cuda:0'\]"):
        format_comparison(rows)
