"""Papermill runs of notebooks/04_evaluate.ipynb: a learner's default run (the committed numbers, and every claim
of the prose), a SMOKE run and bad parameters."""

from __future__ import annotations

import pytest

from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner

pytestmark = pytest.mark.notebook

TEST_IMAGES = 359


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """One run at the defaults and the machine's default thread count, on the CPU the committed run used."""
    return execute_like_a_learner("04_evaluate", tmp_path_factory.mktemp("nb04"), DEVICE="cpu")


def test_default_run_gives_the_committed_numbers(records):
    assert_reproduces_committed("04_evaluate", records, [
        "test_acc", "test_f1_macro", "test_acc_macro", "test_precision_macro", "baseline_acc",
        "baseline_f1_macro", "network_acc_min", "network_acc_mean", "network_acc_max",
        "test_acc_min_last_5", "test_acc_max_last_5",
    ])


def test_metric_claims(records):
    # "Every number is above 0.96, micro and macro accuracy are close"
    for key in ("test_acc", "test_acc_macro", "test_f1_macro", "test_precision_macro"):
        assert records[key] > 0.96, key
    assert abs(records["test_acc"] - records["test_acc_macro"]) < 0.01
    # the confusion matrix: the mistakes are the wrong test images, and spread out over many pairs
    assert records["mistakes"] == round((1 - records["test_acc"]) * TEST_IMAGES)
    assert records["largest_confusion"] <= 2 and records["most_mistakes_per_digit"] <= 6


def test_baseline_claims(records):
    assert 0.95 < records["baseline_acc"] < 0.98  # logistic regression is strong on 8x8 digits
    assert records["baseline_iterations"] < 1000  # the solver finished before max_iter
    # three seeds: the network is at most a few images ahead of the baseline on average ...
    assert records["network_seeds"] == 3
    lead = records["network_acc_mean"] - records["baseline_acc"]
    assert abs(lead) * TEST_IMAGES < 4
    # ... and its largest lead is smaller than one run's swing between its last epochs
    swing = records["test_acc_max_last_5"] - records["test_acc_min_last_5"]
    assert swing > records["network_acc_max"] - records["baseline_acc"]


def test_smoke_run_records_metrics_and_saves_the_confusion_matrix(tmp_path):
    values = execute("04_evaluate", tmp_path, SMOKE=True)
    assert values["_headline"] == "test_acc"
    assert values["epochs"] == 2  # SMOKE caps the default 15 epochs at 2
    # Two epochs are far above chance (0.1) but not yet trained; the baseline does not depend on SMOKE.
    assert 0.3 < values["test_acc"] <= 1.0
    assert 0.2 < values["test_f1_macro"] <= 1.0
    assert 0.93 < values["baseline_acc"] < 0.99
    assert 0.93 < values["baseline_f1_macro"] < 0.99
    assert values["network_seeds"] == 3
    assert (tmp_path / "runs" / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.parametrize(("name", "value"), [("DATASET", "mnist"), ("HIDDEN_UNITS", 0)])
def test_bad_parameter_stops_before_anything_is_written(tmp_path, name, value):
    error = execute_expecting_error("04_evaluate", tmp_path, **{name: value})
    assert error.startswith("ParameterError:") and f"{name} = {value!r}" in error
    assert not (tmp_path / "runs").exists()
