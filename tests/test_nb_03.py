"""03_train through papermill: a smoke run, and every kind of bad parameter stopping in validation."""

import pytest

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook


def test_smoke_run_records_learned_line_and_accuracy(tmp_path):
    records = execute("03_train", tmp_path, SMOKE=True)
    assert records["_headline"] == "test_acc"
    assert records["epochs"] == 3
    assert 0.5 <= records["test_acc"] <= 1  # 3 epochs: well above the 10 % of guessing
    assert abs(records["line_weight"] - 0.7) < 0.25 and abs(records["line_bias"] - 0.3) < 0.25
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"history.json", "digits_loss_curves.png"}


BAD_PARAMETERS = [
    ({"DATASET": "cifar100"}, "DATASET = 'cifar100' is not allowed: choose one of 'digits'."),
    ({"EPOCHS": 0}, "EPOCHS = 0 is not allowed: must be a whole number greater than 0"),
    ({"BATCH_SIZE": -8}, "BATCH_SIZE = -8 is not allowed: must be a whole number greater than 0"),
    ({"LEARNING_RATE": "fast"}, "LEARNING_RATE = 'fast' is not allowed: must be a number greater than 0"),
    ({"LEARNING_RATE": -0.1}, "LEARNING_RATE = -0.1 is not allowed"),
    ({"DEVICE": "cuda"}, "DEVICE = 'cuda' is not available on this machine"),  # no GPU is visible to the kernel
]


@pytest.mark.parametrize(("parameters", "message"), BAD_PARAMETERS, ids=lambda v: str(v)[:30])
def test_bad_parameter_stops_in_validation_before_writing(tmp_path, monkeypatch, parameters, message):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the kernel inherits it: the same cases run on a GPU machine
    error = execute_expecting_error("03_train", tmp_path, SMOKE=True, **parameters)
    assert error.startswith("ParameterError: ") and message in error
    assert not (tmp_path / "runs").exists()
