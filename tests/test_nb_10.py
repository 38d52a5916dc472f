"""10_going_further through papermill: every claim of the prose on the committed run and on a learner's rerun
with another seed set (whose accuracies must lie within the measured spread), a SMOKE run, and bad parameters
(one through papermill, the other through the notebook's own validation cell, without a kernel).

The comparisons the prose makes are inside one run: the script's saved weights give its reported accuracy, the
in-memory loader trains exactly as a DataLoader with the same batch order, two data-parallel processes end with
the weights of one. Timings are recorded but not asserted: they change with the machine and its load, and the
prose quotes none of them (it reads the printed factor, whichever side of 1 it falls).
"""

from __future__ import annotations

import json

import pytest

from helpers.params import ParameterError
from tests.nbrun import (
    assert_within_spread,
    execute,
    execute_expecting_error,
    run_validation_cell,
)

pytestmark = pytest.mark.notebook

NAME = "10_going_further"
TEST_IMAGE = 1 / 359  # one of the 359 digits test images: an accuracy's smallest step


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], ["cli_test_acc", "ddp_test_acc"], floor=TEST_IMAGE)


def test_script_claims(records):
    assert records["epochs"] == 5 and records["processes"] == 2
    # "Both agree: the files hold the trained model", and 5 epochs of TinyVGG learned the digits
    assert records["cli_test_acc"] == records["cli_history_acc"] and records["cli_test_acc"] > 0.8


def test_in_memory_loader_trains_exactly_as_a_data_loader(records):
    assert records["loaders_agree"] is True  # "the same losses with both loaders"


def test_data_parallel_claims(records):
    # "the weights can differ in the last digits of a float32" (one spread seed reached 1.4e-5); "the test
    # accuracies ... were equal in all six runs"
    assert 0 <= records["ddp_max_abs_diff"] < 1e-4
    assert records["single_test_acc"] > 0.8
    # weights that differ by rounding may, on another machine, flip one test image, never more
    assert abs(records["ddp_test_acc"] - records["single_test_acc"]) <= 1 / 359 + 1e-9


def test_compile_and_mixed_precision_lines(records, text):
    status = records["compile_status"]
    assert status == "compiled" or status.startswith("failed, running eagerly")
    if status == "compiled":  # the sentence the cell prints follows the measured factor, whichever side of 1
        verdict = "faster" if records["compile_speedup"] > 1 else "not faster"
        assert f"here the compiled step was {verdict} than the eager one" in text
    assert records["amp_status"].startswith(("skipped: needs a CUDA GPU", "on: "))
    # bfloat16 autocast on the CPU: the layer computes in bfloat16, the loss in float32, the weights stay float32
    assert "parameters torch.float32, layer output torch.bfloat16, loss torch.float32" in text
    assert "No CUDA runtime" not in text  # the filtered log line with this machine's folders


def test_smoke_run_skips_compiling_and_writes_the_two_runs(tmp_path):
    values = execute(NAME, tmp_path, SMOKE=True)
    assert values["_headline"] == "cli_test_acc"
    assert values["epochs"] == 2 and values["processes"] == 2
    assert values["compile_status"] == "skipped (COMPILE = False)" and "compile_speedup" not in values
    assert values["amp_status"].startswith(("skipped: needs a CUDA GPU", "on: "))
    assert values["loaders_agree"] is True and values["ddp_max_abs_diff"] < 1e-4
    runs = tmp_path / "runs"
    assert {p.name for p in runs.iterdir()} == {"cli", "ddp", "speedups.png"}
    for folder in ("cli", "ddp"):
        assert {p.name for p in (runs / folder).iterdir()} == {"history.json", "model.pt"}
        assert len(json.loads((runs / folder / "history.json").read_text())["history"]) == 2


def test_bad_parameter_stops_the_notebook_in_validation_before_writing(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, PROCESSES=0)
    assert error.startswith("ParameterError: ")
    assert "PROCESSES = 0 is not allowed: must be a whole number greater than 0" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("parameters", "message"), [
    ({"BATCH_SIZE": 63}, "BATCH_SIZE = 63 is not allowed: with 2 processes it must be a multiple of 2"),
    ({"PROCESSES": 4, "BATCH_SIZE": 66}, "BATCH_SIZE = 66 is not allowed: with 4 processes it must be a multiple of 4"),
    ({"COMPILE": "yes"}, "COMPILE = 'yes' is not allowed"),
], ids=["batch_size", "batch_size_4", "compile"])
def test_validation_cell_refuses_bad_values(tmp_path, parameters, message):
    with pytest.raises(ParameterError) as error:
        run_validation_cell(NAME, RUNS_DIR=str(tmp_path / "runs"), **parameters)
    assert message in str(error.value)
    assert not (tmp_path / "runs").exists()
