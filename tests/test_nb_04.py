"""Papermill runs of notebooks/04_evaluate.ipynb: a SMOKE run and bad parameters."""

from __future__ import annotations

import pytest

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook


def test_smoke_run_records_metrics_and_saves_the_confusion_matrix(tmp_path):
    values = execute("04_evaluate", tmp_path, SMOKE=True)
    assert values["_headline"] == "test_acc"
    assert values["epochs"] == 2  # SMOKE caps the default 15 epochs at 2
    # Two epochs are far above chance (0.1) but not yet trained; the baseline does not depend on SMOKE.
    assert 0.3 < values["test_acc"] <= 1.0
    assert 0.2 < values["test_f1_macro"] <= 1.0
    assert 0.93 < values["baseline_acc"] < 0.99
    assert 0.93 < values["baseline_f1_macro"] < 0.99
    assert (tmp_path / "runs" / "confusion_matrix.png").stat().st_size > 1000


@pytest.mark.parametrize(("name", "value"), [("DATASET", "mnist"), ("HIDDEN_UNITS", 0)])
def test_bad_parameter_stops_before_anything_is_written(tmp_path, name, value):
    error = execute_expecting_error("04_evaluate", tmp_path, **{name: value})
    assert error.startswith("ParameterError:") and f"{name} = {value!r}" in error
    assert not (tmp_path / "runs").exists()
