"""Papermill runs of notebooks/00_fundamentals.ipynb: recorded values and parameter validation."""

from __future__ import annotations

import pytest
import torch

from tests.nbrun import assert_reproduces_committed, execute_expecting_error, execute_like_a_learner

NAME = "00_fundamentals"


@pytest.fixture
def kernel_without_cuda(monkeypatch):
    """The kernel inherits this environment: no GPU is visible to it, so the same cases run on every machine."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.notebook
def test_default_run_like_a_learner_gives_the_committed_and_hand_checked_values(tmp_path, kernel_without_cuda):
    # The defaults, at the machine's default thread count (SMOKE changes nothing in this notebook).
    records = execute_like_a_learner(NAME, tmp_path)
    assert_reproduces_committed(
        NAME, records, ["autograd_grad", "hand_grad", "grad_w", "grad_b", "errors_caught"], band=1e-6)
    assert records["_headline"] == "autograd_grad"
    # f(x) = x**3 + 2x at x = 2: f'(2) = 3 * 4 + 2
    assert records["autograd_grad"] == records["hand_grad"] == 14.0
    # L = (2w + b - 1.7)**2 at w = 0.5, b = 0: dL/dw = 2 * (-0.7) * 2, dL/db = 2 * (-0.7)
    assert records["grad_w"] == pytest.approx(-2.8, abs=1e-5)
    assert records["grad_b"] == pytest.approx(-1.4, abs=1e-5)
    assert records["seeded_draws_equal"] is True
    # section 8: "(0.1 + 0.2) + 0.3" and "0.1 + (0.2 + 0.3)" differ, the reason for one_cpu_thread()
    assert records["sum_order_matters"] is True
    # shape, device, and two dtype mismatches: each must really raise
    assert records["errors_caught"] == 4
    # DEVICE = "auto" with CUDA hidden: Apple's GPU where there is one, else the CPU
    assert records["device"] == ("mps" if torch.backends.mps.is_available() else "cpu")
    assert (tmp_path / "runs").is_dir() and not any((tmp_path / "runs").iterdir())


@pytest.mark.notebook
def test_unavailable_device_stops_in_validation(tmp_path, kernel_without_cuda):
    error = execute_expecting_error(NAME, tmp_path, DEVICE="cuda")
    assert error.startswith("ParameterError: DEVICE = 'cuda' is not available on this machine: available here are ")
    assert "'cpu'" in error and "'cuda'" not in error.split("available here are ")[1]
    assert not (tmp_path / "runs").exists()


@pytest.mark.notebook
def test_negative_seed_stops_in_validation(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SEED=-1)
    assert error.startswith("ParameterError") and "SEED = -1" in error
    assert not (tmp_path / "runs").exists()
