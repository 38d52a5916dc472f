"""03_train through papermill: every claim of the prose on the committed run and on a learner's rerun with
another seed set (whose numbers must lie within the measured spread), a smoke run, and bad parameters."""

import json

import pytest

from helpers.device import get_device
from helpers.params import ParameterError, check_params
from tests.nbrun import (
    assert_within_spread,
    execute,
    execute_expecting_error,
    execute_like_a_learner,
)

pytestmark = pytest.mark.notebook

RUN_FILES = {"history.json", "digits_loss_curves.png", "digits_epochs.jsonl"}


NAME = "03_train"
TEST_IMAGE = 1 / 359  # one of the 359 digits test images: an accuracy's smallest step
LINE_POINTS = 80  # the straight line's training points


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], ["test_acc", "test_loss", "hand_test_acc"], floor=TEST_IMAGE)
    assert_within_spread(NAME, perturbed[0], ["line_weight", "line_bias", "line_fine_weight", "line_fine_bias"],
                         floor=0.002)


def test_straight_line_claims(records):
    # "Both end within 0.02 of the truth"
    assert abs(records["line_weight"] - 0.7) < 0.02 and abs(records["line_bias"] - 0.3) < 0.02
    # "the test loss stays close to the training loss" (both measured on the same parameters)
    assert abs(records["line_test_loss"] - records["line_train_loss"]) < 0.005
    # "keeps coming back to the same few values": a hop, not a descent
    assert records["line_loss_values_last_100"] <= 10
    # "a whole number of 80ths": each point adds the sign of its error (exact by construction)
    assert records["line_bias_grad"] * LINE_POINTS == pytest.approx(round(records["line_bias_grad"] * LINE_POINTS),
                                                                   abs=1e-4)
    assert records["line_bias_grad"] != 0
    # smaller steps: "The band is several times lower", "within 0.002 of 0.7 and 0.3"
    assert records["line_fine_train_loss"] < records["line_band_top"] / 4
    assert abs(records["line_fine_weight"] - 0.7) < 0.002 and abs(records["line_fine_bias"] - 0.3) < 0.002


def test_hand_written_loop_gives_the_same_history_as_fit(records):
    assert records["hand_train_loss"] == records["fit_train_loss_same_epoch"]
    assert records["hand_test_loss"] == records["fit_test_loss_same_epoch"]
    assert records["hand_test_acc"] == records["fit_test_acc_same_epoch"]


def test_digits_claims(records):
    # "After three epochs the model already classifies over 80 % of the test images"
    assert records["hand_test_acc"] > 0.8
    # "in the first epoch the training loss is higher than the test loss"
    assert records["hand_first_train_loss"] > records["hand_first_test_loss"]
    # "The test accuracy ends above 95 %, far above the 10 % of guessing"
    assert records["epochs"] == 20 and records["test_acc"] > 0.95
    # "reaches its lowest values in the second half of training" and "By the end it lies well above the training loss"
    assert records["test_loss_best_epoch"] > 10
    assert records["test_loss"] > records["train_loss"]
    # "Over these ten epochs the accuracy wanders by a few points"
    assert 0.01 <= records["test_acc_max_last_10"] - records["test_acc_min_last_10"] <= 0.06


def test_run_writes_its_files_and_logs_every_epoch(perturbed):
    records, folder = perturbed
    runs = folder / "runs"
    assert {p.name for p in runs.iterdir()} == RUN_FILES
    logged = [json.loads(line) for line in (runs / "digits_epochs.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in logged] == list(range(1, 21))  # the hook ran after every epoch
    assert logged[-1]["test_acc"] == records["test_acc"]


def test_smoke_run_records_learned_line_and_accuracy(tmp_path):
    records = execute("03_train", tmp_path / "first", SMOKE=True)
    # "The same machine and versions give the same numbers": a second run, at the machine's thread count
    # instead of one thread, records exactly the same values
    assert execute_like_a_learner("03_train", tmp_path / "second", SMOKE=True) == records
    assert records["_headline"] == "test_acc"
    assert records["epochs"] == 3
    assert 0.5 <= records["test_acc"] <= 1  # 3 epochs: well above the 10 % of guessing
    # on any device the hand-written loop and fit agree (on a GPU, sums may run in another order)
    assert records["hand_test_loss"] == pytest.approx(records["fit_test_loss_same_epoch"], rel=1e-3)
    assert {p.name for p in (tmp_path / "first" / "runs").iterdir()} == RUN_FILES


def test_bad_parameter_stops_in_validation_before_writing(tmp_path):
    """One refusal through papermill: the validation cell stops the notebook before anything is written."""
    error = execute_expecting_error("03_train", tmp_path, SMOKE=True, EPOCHS=0)
    assert error.startswith("ParameterError: ")
    assert "EPOCHS = 0 is not allowed: must be a whole number greater than 0" in error
    assert not (tmp_path / "runs").exists()


DEFAULTS = {"DATASET": "digits", "LINE_EPOCHS": 1500, "LINE_LEARNING_RATE": 0.01, "EPOCHS": 20,
            "BATCH_SIZE": 64, "LEARNING_RATE": 0.003, "HIDDEN_UNITS": 16, "SEED": 42, "SMOKE": False,
            "RUNS_DIR": ""}
BAD_PARAMETERS = [
    ({"DATASET": "cifar100"}, "DATASET = 'cifar100' is not allowed: choose one of 'digits'."),
    ({"LINE_EPOCHS": 0}, "LINE_EPOCHS = 0 is not allowed: must be a whole number greater than 0"),
    ({"BATCH_SIZE": -8}, "BATCH_SIZE = -8 is not allowed: must be a whole number greater than 0"),
    ({"LEARNING_RATE": "fast"}, "LEARNING_RATE = 'fast' is not allowed: must be a number greater than 0"),
    ({"LINE_LEARNING_RATE": -0.1}, "LINE_LEARNING_RATE = -0.1 is not allowed"),
]


@pytest.mark.parametrize(("parameters", "message"), BAD_PARAMETERS, ids=lambda v: str(v)[:30])
def test_validation_cell_refuses_bad_values(parameters, message):
    """The notebook's validation call (the same check_params call, no kernel) names the bad value."""
    with pytest.raises(ParameterError) as caught:
        check_params({**DEFAULTS, **parameters}, choices={"DATASET": ["digits"]})
    assert message in str(caught.value)


def test_unavailable_device_is_refused(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ParameterError, match="DEVICE = 'cuda' is not available on this machine"):
        get_device("cuda")
