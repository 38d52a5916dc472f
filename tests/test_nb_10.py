"""Papermill runs of notebooks/10_going_further.ipynb.

The default run, as a learner meets it, must give the committed accuracies and back the prose: the script's
saved weights give its reported accuracy, the in-memory loader trains exactly as a DataLoader with the same
batch order, two data-parallel processes end with the weights of one. Timings are recorded but not asserted:
they change with the machine's load, and the notebook quotes no number of them. A SMOKE run checks the
skipped-compile path and the files written; bad parameters stop the notebook before it writes anything.
"""

from __future__ import annotations

import json

import pytest

from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner

pytestmark = pytest.mark.notebook

NAME = "10_going_further"


def outputs(tmp_path) -> str:
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text(encoding="utf-8"))["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_default_run_gives_the_committed_numbers_and_backs_the_claims(tmp_path):
    values = execute_like_a_learner(NAME, tmp_path)
    assert_reproduces_committed(NAME, values, ["cli_test_acc", "ddp_test_acc"])
    assert values["epochs"] == 5 and values["processes"] == 2
    # "Both agree: the files hold the trained model", and 5 epochs of TinyVGG learned the digits.
    assert values["cli_test_acc"] == values["cli_history_acc"] and values["cli_test_acc"] > 0.8
    # "InMemoryLoader ... trains exactly as a DataLoader with the same batch order does"
    assert values["loaders_agree"] is True
    # "the weights can differ in the last digits of a float32, far below 1e-5, and the test accuracies are equal"
    assert 0 <= values["ddp_max_abs_diff"] < 1e-5
    assert values["ddp_test_acc"] == values["single_test_acc"] > 0.8
    assert values["compile_status"] == "compiled" or values["compile_status"].startswith("failed, running eagerly")
    assert "No CUDA runtime" not in outputs(tmp_path)  # the filtered log line with this machine's folders


def test_smoke_run_skips_compiling_and_writes_the_two_runs(tmp_path):
    values = execute(NAME, tmp_path, SMOKE=True)
    assert values["_headline"] == "cli_test_acc"
    assert values["epochs"] == 2 and values["processes"] == 2
    assert values["compile_status"] == "skipped (COMPILE = False)" and "compile_speedup" not in values
    assert values["amp_status"].startswith(("skipped: needs a CUDA GPU", "on: "))
    assert values["loaders_agree"] is True and values["ddp_max_abs_diff"] < 1e-5
    runs = tmp_path / "runs"
    assert {p.name for p in runs.iterdir()} == {"cli", "ddp", "speedups.png"}
    for folder in ("cli", "ddp"):
        assert {p.name for p in (runs / folder).iterdir()} == {"history.json", "model.pt"}
        assert len(json.loads((runs / folder / "history.json").read_text())["history"]) == 2


@pytest.mark.parametrize(("parameters", "message"), [
    ({"PROCESSES": 0}, "PROCESSES = 0 is not allowed: must be a whole number greater than 0"),
    ({"BATCH_SIZE": 63}, "BATCH_SIZE = 63 is not allowed: with 2 processes it must be a multiple of 2"),
], ids=["processes", "batch_size"])
def test_bad_parameter_stops_in_validation_before_writing(tmp_path, parameters, message):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, **parameters)
    assert error.startswith("ParameterError: ") and message in error
    assert not (tmp_path / "runs").exists()
