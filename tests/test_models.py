import pytest
import torch

from helpers.models import MLP, TinyVGG, count_parameters


@pytest.mark.parametrize("size", [(4, 4), (8, 8), (28, 28), (32, 32), (64, 48), (224, 224)])
@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_vgg_works_for_any_input_size(size, channels):
    model = TinyVGG(in_channels=channels, hidden_units=8, num_classes=5)
    assert model(torch.randn(2, channels, *size)).shape == (2, 5)


@pytest.mark.parametrize("channels", [1, 3])
def test_tiny_vgg_parameter_count_does_not_depend_on_input_size(channels):
    # conv: (channels*9+1)*8 + 3 * (8*9+1)*8, classifier on the 2x2 pooled map: 8*2*2*10 + 10
    expected = (channels * 9 + 1) * 8 + 3 * (8 * 9 + 1) * 8 + (8 * 2 * 2 * 10 + 10)
    for size in (8, 28, 32, 64):
        model = TinyVGG(channels, 8, 10)
        assert model(torch.randn(2, channels, size, size)).shape == (2, 10)
        # counted after a forward pass: a layer sized by its first input would count differently here
        assert count_parameters(model) == expected, size


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 1, 3, 3), (1, 8, 8)])
def test_tiny_vgg_wrong_input_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"TinyVGG expects images of shape \(batch, 1, H, W\)"):
        TinyVGG(1, 8, 10)(torch.randn(*shape))


def test_mlp_shapes_and_layers():
    model = MLP(in_features=64, hidden_units=16, num_classes=10, num_hidden_layers=2, dropout=0.1)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert count_parameters(model) == (64 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)


def test_mlp_wrong_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"MLP expects 64 values per example, got input of shape \(2, 1, 28, 28\)"):
        MLP(64, 16, 10)(torch.randn(2, 1, 28, 28))


def test_count_trainable_only():
    model = MLP(4, 3, 2)
    for p in model.layers[1].parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == 4 * 3 + 3 + 3 * 2 + 2
    assert count_parameters(model, trainable_only=True) == 3 * 2 + 2
