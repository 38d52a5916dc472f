"""04_evaluate through papermill: every claim of the prose on the committed run and on a learner's rerun with
another seed set (whose numbers must lie within the measured spread), a SMOKE run and bad parameters."""

from __future__ import annotations

import pytest

from helpers.params import ParameterError, check_params
from tests.nbrun import assert_within_spread, execute, execute_expecting_error

pytestmark = pytest.mark.notebook

NAME = "04_evaluate"
TEST_IMAGES = 359
TEST_IMAGE = 1 / TEST_IMAGES  # an accuracy's smallest step


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], ["test_acc", "test_f1_macro", "network_acc_mean"], floor=TEST_IMAGE)


def test_metric_claims(records):
    # "The five numbers lie close together, micro and macro accuracy included"
    values = [records[key] for key in ("test_acc", "test_acc_macro", "test_f1_macro", "test_precision_macro")]
    assert max(values) - min(values) < 0.02
    assert 0.93 < records["test_acc"] <= 1
    # the confusion matrix counts the wrong test images; the prose about how they spread over pairs is
    # conditional ("If the mistakes are few and spread over many pairs ..."), since one seed's mistakes
    # bunch up where another's do not
    assert records["mistakes"] == round((1 - records["test_acc"]) * TEST_IMAGES)
    assert 1 <= records["confused_pairs"] <= records["mistakes"]
    assert records["largest_confusion"] <= records["most_mistakes_per_digit"]


def test_baseline_claims(records):
    # logistic regression is strong on 8x8 digits (between 95 and 98 % over the measured seeds)
    assert 0.95 < records["baseline_acc"] < 0.985
    assert records["baseline_iterations"] < 1000  # the solver finished before max_iter
    # "Averaged over the three seeds, the network and logistic regression are within about a point of each
    # other, three test images or fewer either way ...: no more than how far one network moves between its
    # last five epochs"
    assert records["network_seeds"] == 3
    lead = records["network_acc_mean"] - records["baseline_acc"]
    assert abs(lead) < 0.0125
    swing = records["test_acc_max_last_5"] - records["test_acc_min_last_5"]
    assert abs(lead) <= swing


def test_smoke_run_records_metrics_and_saves_the_confusion_matrix(tmp_path):
    values = execute(NAME, tmp_path, SMOKE=True)
    assert values["_headline"] == "test_acc"
    assert values["epochs"] == 2  # SMOKE caps the default 15 epochs at 2
    # Two epochs are far above chance (0.1) but not yet trained; the baseline does not depend on SMOKE.
    assert 0.3 < values["test_acc"] <= 1.0
    assert 0.2 < values["test_f1_macro"] <= 1.0
    assert 0.93 < values["baseline_acc"] < 0.99
    assert 0.93 < values["baseline_f1_macro"] < 0.99
    assert values["network_seeds"] == 3
    assert (tmp_path / "runs" / "confusion_matrix.png").stat().st_size > 1000


def test_bad_parameter_stops_before_anything_is_written(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, HIDDEN_UNITS=0)
    assert error.startswith("ParameterError:") and "HIDDEN_UNITS = 0" in error
    assert not (tmp_path / "runs").exists()


def test_validation_refuses_another_dataset():
    """The notebook's validation call, without a kernel."""
    defaults = {"DATASET": "digits", "EPOCHS": 15, "BATCH_SIZE": 64, "LEARNING_RATE": 0.003, "HIDDEN_UNITS": 16,
                "SEED": 42, "SMOKE": False, "RUNS_DIR": ""}
    check_params(defaults, choices={"DATASET": ["digits"]})
    with pytest.raises(ParameterError, match="DATASET = 'mnist' is not allowed"):
        check_params({**defaults, "DATASET": "mnist"}, choices={"DATASET": ["digits"]})
