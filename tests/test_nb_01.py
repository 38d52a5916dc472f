"""Tests of notebooks/01_data.ipynb: papermill runs with parameters, and its hand-written Dataset."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import TensorPairDataset, load_digits, make_toy_2d
from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner


@pytest.mark.notebook
def test_smoke_run_records_consistent_sizes(tmp_path):
    values = execute("01_data", tmp_path, SMOKE=True, BATCH_SIZE=64, TEST_FRACTION=0.25)
    assert values["_headline"] == "n_train"
    # SMOKE caps the line at 200 rows and the digits at 500 images.
    assert values["n_samples"] == 200
    assert values["n_train"] + values["n_test"] == 200
    assert values["n_test"] == 50
    assert values["digits_shape"] == "(500, 1, 8, 8)"
    assert values["digits_train"] + values["digits_test"] == 500
    assert values["digits_test"] == 125
    assert values["batches_per_epoch"] == math.ceil(375 / 64) == 6
    assert values["last_batch_size"] == 375 - 5 * 64
    assert values["toy_classes"] == 2  # circles
    assert (tmp_path / "runs" / "digits_grid.png").stat().st_size > 1000


@pytest.mark.notebook
def test_default_run_like_a_learner_reproduces_and_backs_the_text(tmp_path):
    records = execute_like_a_learner("01_data", tmp_path)
    assert_reproduces_committed("01_data", records, [
        "n_train", "n_test", "digits_train", "digits_test", "batches_per_epoch", "last_batch_size",
        "train_class_min", "train_class_max", "test_class_min", "test_class_max",
        "max_before_resize", "max_after_resize"])
    # "1,797 scanned digits of 8x8 pixels"; "one step of the optimizer per batch, 45 steps here"
    assert records["digits_shape"] == "(1797, 1, 8, 8)"
    assert records["batches_per_epoch"] == math.ceil(records["digits_train"] / 32) == 45
    # "The classes are balanced (the same number of rows each) ... half of them here"
    assert records["toy_classes"] == 2 and records["toy_class_min"] == records["toy_class_max"] == 500
    # "Resizing blends neighbouring pixels, so the brightest value drops a little"
    assert 0.8 < records["max_after_resize"] < records["max_before_resize"] - 0.01
    # "a second run with the same seed repeats both orders exactly", "epoch 1 and epoch 2 see different
    # orders", "another seed gives other orders"; "Every row lands in exactly one of the two sets"
    assert records["shuffle_repeats"] and records["epochs_differ"] and records["seeds_differ"]
    assert records["split_disjoint"] and records["n_train"] + records["n_test"] == records["n_samples"]
    # The numbers the class-balance paragraph quotes: "between 130 and 150", "from 29 ... to 53"
    assert (records["train_class_min"], records["train_class_max"]) == (130, 150)
    assert (records["test_class_min"], records["test_class_max"]) == (29, 53)
    # "The test split varies more" (relative to its size, and in images)
    train_spread = records["train_class_max"] / records["train_class_min"]
    assert records["test_class_max"] / records["test_class_min"] > train_spread + 0.5
    test_range = records["test_class_max"] - records["test_class_min"]
    assert test_range > records["train_class_max"] - records["train_class_min"]
    # "The pass with two workers took many times longer"
    assert records["epoch_ms_two_workers"] > 3 * records["epoch_ms_no_workers"]


def test_straight_lines_split_blobs_but_not_circles_or_moons():
    """The notebook's claim about its three toy sets (defaults: 1,000 points, noise 0.1, seed 42)."""
    from sklearn.linear_model import LogisticRegression

    accuracy = {}
    for name in ("circles", "moons", "blobs"):
        X, y = make_toy_2d(name, n_samples=1000, noise=0.1, seed=42)
        accuracy[name] = LogisticRegression(max_iter=5000).fit(X.numpy(), y.numpy()).score(X.numpy(), y.numpy())
    assert accuracy["blobs"] > 0.95  # "straight lines split its four clusters, apart from a few points"
    assert accuracy["circles"] < 0.6  # two rings: a straight line does no better than chance
    assert accuracy["moons"] < 0.92  # interleaved half-moons: no straight line separates them


@pytest.mark.notebook
def test_moons_runs(tmp_path):
    values = execute("01_data", tmp_path, SMOKE=True, DATASET="moons", N_SAMPLES=150)
    assert values["toy_classes"] == 2
    assert values["n_train"] + values["n_test"] == values["n_samples"] == 150


@pytest.mark.notebook
def test_unknown_dataset_stops_in_validation(tmp_path):
    message = execute_expecting_error("01_data", tmp_path, SMOKE=True, DATASET="spirals")
    assert "ParameterError" in message and "DATASET = 'spirals'" in message
    for allowed in ("'circles'", "'moons'", "'blobs'"):
        assert allowed in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.notebook
def test_zero_batch_size_stops_in_validation(tmp_path):
    message = execute_expecting_error("01_data", tmp_path, SMOKE=True, BATCH_SIZE=0)
    assert "ParameterError" in message and "BATCH_SIZE = 0" in message
    assert not (tmp_path / "runs").exists()


# The Dataset written out in 01_data is helpers.data.TensorPairDataset: check it against PyTorch's.

def _digits(n: int = 70) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_digits()
    return images[:n], labels[:n]


def test_tensor_pair_dataset_yields_what_tensor_dataset_yields():
    images, labels = _digits()
    ours, theirs = TensorPairDataset(images, labels), TensorDataset(images, labels)
    assert len(ours) == len(theirs) == 70
    for i in (0, 1, 35, 69, -1):
        (x_ours, y_ours), (x_theirs, y_theirs) = ours[i], theirs[i]
        assert torch.equal(x_ours, x_theirs) and torch.equal(y_ours, y_theirs)
        assert x_ours.shape == (1, 8, 8) and y_ours.dtype == torch.int64
    with pytest.raises(IndexError):
        ours[70]


def test_tensor_pair_dataset_batches_match_tensor_dataset_with_short_last_batch():
    images, labels = _digits()  # 70 samples in batches of 32: 32, 32, 6
    ours = list(DataLoader(TensorPairDataset(images, labels), batch_size=32))
    theirs = list(DataLoader(TensorDataset(images, labels), batch_size=32))
    assert [len(y) for _, y in ours] == [len(y) for _, y in theirs] == [32, 32, 6]
    for (x_ours, y_ours), (x_theirs, y_theirs) in zip(ours, theirs, strict=True):
        assert x_ours.shape == x_theirs.shape and torch.equal(x_ours, x_theirs)
        assert torch.equal(y_ours, y_theirs)


def test_tensor_pair_dataset_shuffled_batches_match_with_same_seed():
    images, labels = _digits()
    loaders = [DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(7))
               for data in (TensorPairDataset(images, labels), TensorDataset(images, labels))]
    ours, theirs = (list(loader) for loader in loaders)
    assert not torch.equal(ours[0][1], labels[:32])  # really shuffled
    for (x_ours, y_ours), (x_theirs, y_theirs) in zip(ours, theirs, strict=True):
        assert torch.equal(x_ours, x_theirs) and torch.equal(y_ours, y_theirs)


def test_tensor_pair_dataset_applies_transform_and_checks_lengths():
    images, labels = _digits()
    flat = TensorPairDataset(images, labels, transform=torch.flatten)
    x, y = flat[3]
    assert x.shape == (64,) and torch.equal(x, images[3].flatten()) and y == labels[3]
    with pytest.raises(ValueError, match="70 rows but y has 69"):
        TensorPairDataset(images, labels[:-1])
