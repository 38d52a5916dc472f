"""helpers.compare: training and timing several models side by side (07_computer_vision)."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

import helpers.compare as compare
from helpers.compare import compare_models, train_and_time
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


class Clock:
    """Stands in for ``compare.time``: the real ``perf_counter`` plus the seconds ``advance`` added."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def perf_counter(self) -> float:
        return time.perf_counter() + self.offset


class SlowFirstCall(nn.Module):
    """A model whose first forward call costs an hour on ``clock`` (a stand-in for CUDA start-up)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.linear, self.clock = nn.Sequential(nn.Flatten(), nn.Linear(36, 2)), clock
        self.calls: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.calls:
            self.clock.advance(3600)
        self.calls.append((self.training, x))
        return self.linear(x)


def test_the_warm_up_pass_runs_before_the_clock_in_eval_mode_on_a_test_batch(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(compare, "time", clock)
    data = separable_image_data()
    model = SlowFirstCall(clock)
    test_batches = [(data.X_test[:5], data.y_test[:5])]
    history, seconds = train_and_time(model, [(data.X_train, data.y_train)], test_batches, 1, 0.01, CPU)
    first_training, first_input = model.calls[0]
    assert not first_training and torch.equal(first_input, data.X_test[:5])
    assert len(model.calls) == 1 + 2  # warm-up, one training batch, one test batch
    assert seconds < 3600  # the slow first call is not charged to the model
    assert seconds >= history[0]["seconds"]


class SteppingClock:
    """Stands in for ``compare.time``: each ``perf_counter`` call is 2.5 s after the one before."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 2.5
        return self.now


def test_compare_models_rows_are_what_an_independent_seeded_run_gives(monkeypatch):
    builders = {"linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 2)), "mlp": lambda: MLP(36, 4, 2)}
    monkeypatch.setattr(compare, "time", SteppingClock())
    rows = compare_models(builders, separable_image_data(), epochs=3, batch_size=8, learning_rate=0.01,
                          device=CPU, seed=5)
    assert [r["model"] for r in rows] == ["linear", "mlp"]
    assert [r["parameters"] for r in rows] == [36 * 2 + 2, (36 * 4 + 4) + (4 * 2 + 2)]
    assert [r["device"] for r in rows] == ["cpu", "cpu"]
    assert [r["seconds"] for r in rows] == [2.5, 2.5]  # the clock read once before training, once after

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
