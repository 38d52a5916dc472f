"""Papermill runs of notebooks/00_fundamentals.ipynb: recorded values and parameter validation."""

from __future__ import annotations

import pytest
import torch

from helpers.device import available_devices
from tests.nbrun import execute, execute_expecting_error

NAME = "00_fundamentals"


@pytest.mark.notebook
def test_smoke_run_records_hand_checked_values(tmp_path):
    records = execute(NAME, tmp_path, SMOKE=True)
    assert records["_headline"] == "autograd_grad"
    # f(x) = x**3 + 2x at x = 2: f'(2) = 3 * 4 + 2
    assert records["autograd_grad"] == records["hand_grad"] == 14.0
    # L = (2w + b - 1.7)**2 at w = 0.5, b = 0: dL/dw = 2 * (-0.7) * 2, dL/db = 2 * (-0.7)
    assert records["grad_w"] == pytest.approx(-2.8, abs=1e-5)
    assert records["grad_b"] == pytest.approx(-1.4, abs=1e-5)
    assert records["seeded_draws_equal"] is True
    # shape, device, and two dtype mismatches: each must really raise
    assert records["errors_caught"] == 4
    assert records["device"] == available_devices()[0]
    assert (tmp_path / "runs").is_dir() and not any((tmp_path / "runs").iterdir())


@pytest.mark.notebook
@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so DEVICE='cuda' is valid")
def test_unavailable_device_stops_in_validation(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, DEVICE="cuda")
    assert error.startswith("ParameterError")
    assert "DEVICE = 'cuda'" in error and "not available" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.notebook
def test_negative_seed_stops_in_validation(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SEED=-1)
    assert error.startswith("ParameterError") and "SEED = -1" in error
    assert not (tmp_path / "runs").exists()
