"""Tests of notebooks/01_data.ipynb: every claim of the prose on the committed run and on a learner's rerun
with another seed, a smoke run, parameter validation, and its hand-written Dataset against PyTorch's."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import TensorPairDataset, load_digits, make_toy_2d
from helpers.params import ParameterError
from tests.nbrun import execute, execute_expecting_error, run_validation_cell

NAME = "01_data"


@pytest.mark.notebook
def test_smoke_run_with_moons_records_consistent_sizes(tmp_path):
    values = execute(NAME, tmp_path, SMOKE=True, DATASET="moons", BATCH_SIZE=64, TEST_FRACTION=0.25)
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
    assert values["toy_classes"] == 2  # moons
    assert (tmp_path / "runs" / "digits_grid.png").stat().st_size > 1000


@pytest.mark.notebook
def test_sizes_and_data_claims(records):
    # "1,797 scanned digits of 8x8 pixels"; "one step of the optimizer per batch, 45 steps here"
    assert records["digits_shape"] == "(1797, 1, 8, 8)"
    assert (records["digits_train"], records["digits_test"]) == (1438, 359)
    assert records["batches_per_epoch"] == math.ceil(records["digits_train"] / 32) == 45
    assert records["last_batch_size"] == 1438 - 44 * 32
    assert (records["n_train"], records["n_test"], records["n_samples"]) == (800, 200, 1000)  # "800 training points"
    # "The classes are balanced (the same number of rows each) ... half of them here"
    assert records["toy_classes"] == 2 and records["toy_class_min"] == records["toy_class_max"] == 500
    # "Resizing blends neighbouring pixels, so the brightest value drops a little"
    assert 0.8 < records["max_after_resize"] < records["max_before_resize"] - 0.01


@pytest.mark.notebook
def test_shuffling_and_split_claims(records):
    # "a second run with the same seed repeats both orders exactly", "epoch 1 and epoch 2 see different
    # orders", "another seed gives other orders"; "Every row lands in exactly one of the two sets"
    assert records["shuffle_repeats"] and records["epochs_differ"] and records["seeds_differ"]
    assert records["split_disjoint"] and records["n_train"] + records["n_test"] == records["n_samples"]
    # "the 200 test points ... are scattered along its whole length too" (x runs over [0, 1))
    assert records["test_x_min"] < 0.05 and records["test_x_max"] > 0.95


@pytest.mark.notebook
def test_class_balance_claims(records):
    if records["seed"] == 42:  # "With SEED = 42 ... between 130 and 150", "from 29 ... to 53"
        assert (records["train_class_min"], records["train_class_max"]) == (130, 150)
        assert (records["test_class_min"], records["test_class_max"]) == (29, 53)
    # "The test split varies more for its size": the largest count over the smallest
    train_ratio = records["train_class_max"] / records["train_class_min"]
    assert records["test_class_max"] / records["test_class_min"] > train_ratio + 0.05


@pytest.mark.notebook
def test_workers_claim(records):
    # "The pass with two workers took longer"
    assert records["epoch_ms_two_workers"] > 1.5 * records["epoch_ms_no_workers"]


def test_committed_run_used_the_default_seed_and_the_rerun_another():
    from tests.nbrun import committed_records, perturbed_seed

    assert committed_records(NAME)["seed"] == 42 and perturbed_seed(NAME) != 42


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
def test_unknown_dataset_stops_in_validation(tmp_path):
    message = execute_expecting_error(NAME, tmp_path, SMOKE=True, DATASET="spirals")
    assert "ParameterError" in message and "DATASET = 'spirals'" in message
    for allowed in ("'circles'", "'moons'", "'blobs'"):
        assert allowed in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("parameters", "message"), [
    ({"BATCH_SIZE": 0}, "BATCH_SIZE = 0 is not allowed"),
    ({"N_SAMPLES": -5}, "N_SAMPLES = -5 is not allowed"),
    ({"TEST_FRACTION": 1.5}, "TEST_FRACTION = 1.5 is not allowed"),
    ({"SEED": 2.5}, "SEED = 2.5 is not allowed"),
])
def test_bad_parameter_is_refused_by_the_validation_cell(parameters, message):
    with pytest.raises(ParameterError, match=message):
        run_validation_cell(NAME, **parameters)


def test_validation_cell_accepts_the_defaults():
    run_validation_cell(NAME)


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
