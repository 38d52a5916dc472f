"""Papermill runs of notebooks/10_going_further.ipynb: a SMOKE run and bad parameters."""

from __future__ import annotations

import json

import pytest

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook


def test_smoke_run_trains_by_script_and_by_two_processes(tmp_path):
    values = execute("10_going_further", tmp_path, SMOKE=True)
    assert values["_headline"] == "cli_test_acc"
    assert values["epochs"] == 2 and values["processes"] == 2
    assert 0.2 <= values["cli_test_acc"] <= 1  # 2 epochs of TinyVGG: above the 10 % of guessing
    assert 0.3 <= values["ddp_test_acc"] <= 1
    assert 0 <= values["ddp_max_abs_diff"] < 1e-5  # two processes made the updates of one
    # DataLoader time / InMemoryLoader time for one epoch: the in-memory loader skips the per-example
    # indexing and collating (about 1.6x on a busy CPU). Far above 20 would mean it skipped batches.
    assert 1.0 < values["inmemory_speedup"] < 20
    assert values["compile_status"] == "skipped (COMPILE = False)" and "compile_speedup" not in values
    assert values["amp_status"].startswith(("skipped: needs a CUDA GPU", "on: "))
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
    error = execute_expecting_error("10_going_further", tmp_path, SMOKE=True, **parameters)
    assert error.startswith("ParameterError: ") and message in error
    assert not (tmp_path / "runs").exists()
