"""Papermill runs of notebooks/06_save_load.ipynb: a SMOKE run and bad parameters."""

from __future__ import annotations

import pytest

from helpers.checkpoint import load_checkpoint
from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook


def test_smoke_run_resumes_identically_and_leaves_good_checkpoints(tmp_path):
    values = execute("06_save_load", tmp_path, SMOKE=True)
    assert values["_headline"] == "test_acc"
    assert 0.4 <= values["test_acc"] <= 1.0
    assert values["resume_identical"] is True
    assert values["predictions_equal"] is True
    assert (values["epochs"], values["resume_after"]) == (3, 2)
    runs = tmp_path / "runs"
    checkpoint = load_checkpoint(runs / "checkpoint.pt")
    assert checkpoint["epoch"] == 3 and [m["epoch"] for m in checkpoint["history"]] == [1, 2, 3]
    assert not [p.name for p in runs.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("resume_after, message", [
    (6, "RESUME_AFTER = 6 is not allowed: it must be smaller than EPOCHS = 6"),
    (0, "RESUME_AFTER = 0 is not allowed: must be a whole number greater than 0"),
])
def test_bad_resume_after_stops_in_validation_before_writing(tmp_path, resume_after, message):
    error = execute_expecting_error("06_save_load", tmp_path, RESUME_AFTER=resume_after)
    assert error.startswith("ParameterError") and message in error
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_cannot_be_written_says_what_to_do(tmp_path):
    (tmp_path / "a_file").write_text("a file, not a folder")
    error = execute_expecting_error("06_save_load", tmp_path, RUNS_DIR=str(tmp_path / "a_file" / "runs"))
    assert error.startswith("PermissionError") and "cannot write to" in error and "set RUNS_DIR" in error
