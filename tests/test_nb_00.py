"""00_fundamentals through papermill: every claim of the prose on the committed run and on a learner's rerun
with another seed, and the validation of its parameters."""

from __future__ import annotations

import pytest

from helpers.params import ParameterError
from tests.nbrun import execute_expecting_error, run_validation_cell

NAME = "00_fundamentals"


@pytest.mark.notebook
def test_autograd_matches_the_derivatives_by_hand(records):
    assert records["_headline"] == "autograd_grad"
    # f(x) = x**3 + 2x at x = 2: f'(2) = 3 * 4 + 2
    assert records["autograd_grad"] == records["hand_grad"] == 14.0
    # L = (2w + b - 1.7)**2 at w = 0.5, b = 0: dL/dw = 2 * (-0.7) * 2, dL/db = 2 * (-0.7)
    assert records["grad_w"] == pytest.approx(-2.8, abs=1e-5)
    assert records["grad_b"] == pytest.approx(-1.4, abs=1e-5)


@pytest.mark.notebook
def test_seeds_sums_and_errors_claims(records):
    # "Same seed, same numbers", whichever the seed; the helpers give the hand-seeded draws
    assert records["seeded_draws_equal"] is True
    # section 8: "(0.1 + 0.2) + 0.3" and "0.1 + (0.2 + 0.3)" differ, the reason for one_cpu_thread()
    assert records["sum_order_matters"] is True
    # section 11: shape, device and two dtype mismatches, each really raised
    assert records["errors_caught"] == 4
    assert records["device"] == "cpu"  # the committed run and the perturbed rerun both run on the CPU


@pytest.mark.notebook
def test_rerun_writes_nothing(perturbed):
    runs = perturbed[1] / "runs"
    assert runs.is_dir() and not any(runs.iterdir())  # "This notebook saves no files"


@pytest.mark.notebook
def test_unavailable_device_stops_in_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the kernel inherits it: the same case on a GPU machine
    error = execute_expecting_error(NAME, tmp_path, DEVICE="cuda")
    assert error.startswith("ParameterError: DEVICE = 'cuda' is not available on this machine: available here are ")
    assert "'cpu'" in error and "'cuda'" not in error.split("available here are ")[1]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("parameters", "message"), [
    ({"SEED": -1}, "SEED = -1 is not allowed"),
    ({"SMOKE": "yes"}, "SMOKE = 'yes' is not allowed"),
])
def test_bad_parameter_is_refused_by_the_validation_cell(parameters, message):
    with pytest.raises(ParameterError, match=message):
        run_validation_cell(NAME, **parameters)


def test_validation_cell_accepts_the_defaults():
    run_validation_cell(NAME)
