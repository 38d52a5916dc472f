"""Tests of 02_model: the straight-line model against nn.Linear, and papermill runs of the notebook."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from helpers.models import LinearRegression, count_parameters
from tests.nbrun import execute, execute_expecting_error, notebook_path


def _linear_copy(model: nn.Module) -> nn.Linear:
    """An nn.Linear(1, 1) holding the same weight and bias as ``model``."""
    layer = nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.copy_(model.weight.reshape(1, 1))
        layer.bias.copy_(model.bias)
    return layer


def _notebook_class() -> type[nn.Module]:
    """The ``LinearRegressionModel`` class exactly as written out in the notebook."""
    cells = json.loads(notebook_path("02_model").read_text(encoding="utf-8"))["cells"]
    code = next("".join(c["source"]) for c in cells
                if c["cell_type"] == "code" and "class LinearRegressionModel(" in "".join(c["source"]))
    namespace = {"torch": torch, "nn": nn}
    exec(code, namespace)
    return namespace["LinearRegressionModel"]


MODELS_FROM_SCRATCH = {
    "helpers": lambda: LinearRegression(),
    "notebook": lambda: _notebook_class()(),
}


@pytest.mark.parametrize("source", sorted(MODELS_FROM_SCRATCH))
@pytest.mark.parametrize("n", [1, 7, 256])
def test_linear_regression_equals_nn_linear_outputs_and_gradients(source, n):
    torch.manual_seed(n)
    scratch = MODELS_FROM_SCRATCH[source]()
    library = _linear_copy(scratch)
    X, y = torch.randn(n, 1), torch.randn(n, 1)

    y_hat = scratch(X)
    torch.testing.assert_close(y_hat, library(X))
    assert y_hat.shape == (n, 1)

    nn.MSELoss()(scratch(X), y).backward()
    nn.MSELoss()(library(X), y).backward()
    assert scratch.weight.grad.abs().item() > 0 and scratch.bias.grad.abs().item() > 0
    torch.testing.assert_close(scratch.weight.grad, library.weight.grad.reshape(1))
    torch.testing.assert_close(scratch.bias.grad, library.bias.grad)


def test_linear_regression_has_two_registered_parameters_and_steps_like_nn_linear():
    torch.manual_seed(0)
    scratch = LinearRegression()
    library = _linear_copy(scratch)
    assert [name for name, _ in scratch.named_parameters()] == ["weight", "bias"]
    assert count_parameters(scratch) == count_parameters(library) == 2

    X = torch.linspace(0, 1, 50).unsqueeze(1)
    y = 0.7 * X + 0.3
    for model in (scratch, library):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        nn.MSELoss()(model(X), y).backward()
        optimizer.step()
    torch.testing.assert_close(scratch.weight, library.weight.reshape(1))
    torch.testing.assert_close(scratch.bias, library.bias)


@pytest.mark.notebook
def test_smoke_run_records_the_parameter_counts_of_helpers_models(tmp_path):
    hidden_units = 8  # not the default, so the counts prove the parameter reached the models
    records = execute("02_model", tmp_path, SMOKE=True, HIDDEN_UNITS=hidden_units)

    assert records["_headline"] == "tinyvgg_params"
    h = hidden_units  # counted by hand, layer by layer (weights + biases)
    # TinyVGG: a 3x3 conv from 1 channel, three 3x3 convs h -> h, then a linear layer on the 2x2 pooled map
    assert records["tinyvgg_params"] == (1 * 9 + 1) * h + 3 * (h * 9 + 1) * h + (h * 2 * 2 * 10 + 10)
    # MLP: 64 pixels -> h -> 10 classes
    assert records["mlp_params"] == (64 * h + h) + (h * 10 + 10)
    # torchvision's published sizes: resnet18 has 11,689,512 with 1000 classes; its last layer is 512 -> classes
    assert records["resnet18_params"] == 11_689_512 - (512 * 1000 + 1000) + (512 * 10 + 10)
    assert records["mobilenet_v3_small_params"] == 2_542_856  # the published size (1000 classes)
    assert 0.1 < records["untrained_test_mae"] < 2.0  # seeded random start: clearly wrong

    saved = torch.load(tmp_path / "runs" / "line_model_untrained.pt", weights_only=True)
    assert set(saved) == {"weight", "bias"} and saved["weight"].shape == (1,)


@pytest.mark.notebook
@pytest.mark.parametrize("name, value", [("LEARNING_RATE", "fast"), ("HIDDEN_UNITS", 0)])
def test_bad_parameter_stops_before_anything_is_written(tmp_path, name, value):
    error = execute_expecting_error("02_model", tmp_path, SMOKE=True, **{name: value})
    assert error.startswith("ParameterError")
    assert f"{name} = {value!r} is not allowed" in error
    assert not (tmp_path / "runs").exists()
