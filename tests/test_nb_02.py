"""Tests of 02_model: the straight-line model against nn.Linear, and papermill runs of the notebook."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from helpers.models import LinearRegression, count_parameters
from helpers.params import ParameterError
from tests.nbrun import (
    execute,
    execute_expecting_error,
    notebook_path,
    run_validation_cell,
)

NAME = "02_model"


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
    records = execute(NAME, tmp_path, SMOKE=True, HIDDEN_UNITS=hidden_units)

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
def test_parameter_counts(records):
    # "about 11 million parameters, against 2,410 in our MLP and 29,354 in TinyVGG"
    assert 10.5e6 < records["resnet18_params"] < 11.5e6
    assert (records["mlp_params"], records["tinyvgg_params"]) == (2410, 29354)
    # "MobileNetV3-small ... has about four times fewer parameters than ResNet-18"
    assert 3.5 < records["resnet18_params"] / records["mobilenet_v3_small_params"] < 5
    # "Almost all of TinyVGG's parameters sit in the 3x3 convolutions from 32 to 32 channels (9,248 each)"
    assert 3 * (32 * 32 * 9 + 32) / records["tinyvgg_params"] > 0.9


@pytest.mark.notebook
def test_untrained_models_claims(records):
    if records["seed"] == 42:  # "with SEED = 42 it is too flat (weight 0.34 ...) and too low (bias 0.13 ...)"
        assert round(records["start_weight"], 2) == 0.34 and round(records["start_bias"], 2) == 0.13
    # "The untrained line's L1 loss is the average distance we printed in section 3"
    assert records["untrained_test_l1"] == pytest.approx(records["untrained_test_mae"], abs=1e-6)
    # "its accuracy is of the order of the 1 in 10 of chance, anywhere from a few per cent to about twice that"
    assert 0.02 < records["untrained_mlp_acc"] < 0.2


@pytest.mark.notebook
def test_from_scratch_and_nn_linear_agree_up_to_rounding(records):
    # "the largest difference printed is 0, or a difference in the last digit of a float32 (about 1e-7 times
    # the size of the numbers)"
    assert records["linear_matches_scratch"] is True
    assert records["linear_max_difference"] < 1e-6


@pytest.mark.notebook
def test_loss_and_optimizer_claims(records):
    # "Feeding probabilities gives ... a wrong loss, here far higher than the right one" (hand-typed logits)
    assert records["ce_probabilities"] > 2 * records["ce_logits"]
    # "Each parameter moved against its gradient, by lr times it, and the loss went down a little"
    for name in ("weight", "bias"):
        assert records[f"sgd_{name}_moved"] == pytest.approx(-0.01 * records[f"sgd_{name}_grad"], rel=1e-3)
    assert 0.9 * records["sgd_loss_before"] < records["sgd_loss_after"] < records["sgd_loss_before"]
    if records["seed"] == 42:  # "with SEED = 42 both gradients are negative, so both parameters moved up"
        assert records["sgd_weight_grad"] < 0 and records["sgd_bias_grad"] < 0
    # "Adam's first step moves every parameter by about lr (LEARNING_RATE = 0.01), whatever the size of its
    # gradient", in the direction against it
    for name in ("weight", "bias"):
        assert abs(records[f"adam_{name}_moved"]) == pytest.approx(0.01, rel=0.01)
        assert records[f"adam_{name}_moved"] * records[f"sgd_{name}_grad"] < 0


def test_committed_run_used_the_default_seed_and_the_rerun_another():
    from tests.nbrun import committed_records, perturbed_seed

    assert committed_records(NAME)["seed"] == 42 and perturbed_seed(NAME) != 42


@pytest.mark.notebook
def test_bad_parameter_stops_before_anything_is_written(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, LEARNING_RATE="fast")
    assert error.startswith("ParameterError") and "LEARNING_RATE = 'fast' is not allowed" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("parameters", "message"), [
    ({"HIDDEN_UNITS": 0}, "HIDDEN_UNITS = 0 is not allowed"),
    ({"LEARNING_RATE": -0.1}, "LEARNING_RATE = -0.1 is not allowed"),
    ({"SEED": -3}, "SEED = -3 is not allowed"),
])
def test_bad_parameter_is_refused_by_the_validation_cell(parameters, message):
    with pytest.raises(ParameterError, match=message):
        run_validation_cell(NAME, **parameters)


def test_validation_cell_accepts_the_defaults():
    run_validation_cell(NAME)
