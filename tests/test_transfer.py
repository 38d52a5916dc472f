"""Unit tests for helpers/transfer.py (09_transfer_learning). None of them touches the network.

The ImageNet tests use torchvision's real ``MobileNet_V3_Small_Weights`` enum, its real
preprocessing and its real constructor; the weights file is written here into a temporary
``TORCH_HOME`` cache (the hash is only checked on download, so any state dict of the right
shape will do).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small, resnet18

import helpers.transfer as transfer
from helpers.data import few_labelled_split, load_digits, select_digits
from helpers.device import make_generator, set_seed
from helpers.downloads import OFFLINE_ENV, cached_weights_path
from helpers.engine import train_one_epoch
from helpers.models import TinyVGG
from helpers.transfer import (
    MAX_LABELLED_PER_CLASS,
    TARGET_DIGITS,
    ImageNetInput,
    ShiftedBatches,
    TransferModel,
    head_inputs,
    imagenet_weights_problem,
    last_layer,
    pretrain_source_model,
    random_init_copy,
    shift_digits,
)
from tests.test_downloads import mobilenet_state, write_unsafe_weights

CPU = torch.device("cpu")
WEIGHTS = MobileNet_V3_Small_Weights.DEFAULT
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as published


@pytest.fixture
def hub_cache(monkeypatch, tmp_path) -> Path:
    """An empty torch.hub cache (``TORCH_HOME`` in tmp_path) and no network; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def cached_weights(hub_cache) -> dict[str, torch.Tensor]:
    """A MobileNet V3 small state dict saved in the cache under the real weights' file name."""
    state = mobilenet_state(seed=1)
    hub_cache.mkdir(parents=True)
    torch.save(state, hub_cache / cached_weights_path(WEIGHTS).name)
    return state


class SmallClassifier(nn.Module):
    """Shaped like MobileNet V3: features with BatchNorm, then Linear, Hardswish, Dropout and a last Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(nn.Linear(16, 8), nn.Hardswish(), nn.Dropout(0.5), nn.Linear(8, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def pretrained_classifier() -> SmallClassifier:
    set_seed(0)
    model = SmallClassifier()
    model.features[1].running_mean.fill_(0.5)  # "pretrained" statistics, to see whether they move
    return model


def one_training_step(model: TransferModel, optimizer: torch.optim.Optimizer) -> None:
    set_seed(1)
    X, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    train_one_epoch(model, [(X, y)], nn.CrossEntropyLoss(), optimizer, CPU)


def copies(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def all_equal(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return all(torch.equal(before[name], value) for name, value in module.state_dict().items())


def none_equal(before: dict[str, torch.Tensor], parameters) -> bool:
    return not any(torch.equal(before[name], value) for name, value in parameters)


def entries_not_from(pretrained: nn.Module, model: TransferModel) -> list[str]:
    original = pretrained.state_dict()
    return [name for name, value in model.network.state_dict().items()
            if value.shape != original[name].shape or not torch.equal(value, original[name])]


def test_select_digits_keeps_those_digits_and_relabels_them_in_order():
    X, y = torch.arange(10.0).reshape(10, 1), torch.tensor([5, 0, 9, 6, 5, 1, 7, 8, 9, 2])
    X_kept, y_kept = select_digits(X, y, TARGET_DIGITS)
    assert X_kept.flatten().tolist() == [0, 2, 3, 4, 6, 7, 8]
    assert y_kept.tolist() == [0, 4, 1, 0, 2, 3, 4]


def test_few_labelled_split_takes_exactly_per_class_and_keeps_the_test_set_fixed():
    y = torch.arange(3).repeat_interleave(20)  # 3 classes of 20
    ids = torch.arange(60)  # the "images" are their own index, to check for overlap
    X_lab, y_lab, X_test, y_test = few_labelled_split(ids, y, per_class=4, seed=7)
    assert torch.bincount(y_lab).tolist() == [4, 4, 4]
    assert torch.bincount(y_test).tolist() == [10, 10, 10]
    assert torch.equal(y[X_lab], y_lab) and torch.equal(y[X_test], y_test)
    assert not set(X_lab.tolist()) & set(X_test.tolist())
    more_labels = few_labelled_split(ids, y, per_class=9, seed=7)
    assert torch.equal(more_labels[2], X_test)  # the same test images whatever per_class is
    assert set(X_lab.tolist()) < set(more_labels[0].tolist())
    assert torch.equal(few_labelled_split(ids, y, per_class=4, seed=7)[0], X_lab)
    assert not torch.equal(few_labelled_split(ids, y, per_class=4, seed=8)[0], X_lab)


@pytest.mark.parametrize("per_class", [0, 11])
def test_few_labelled_split_refuses_impossible_counts(per_class):
    y = torch.arange(3).repeat_interleave(20)
    with pytest.raises(ValueError, match=rf"cannot take {per_class} labelled examples of class 0: .*1 to 10"):
        few_labelled_split(torch.arange(60), y, per_class=per_class)


def test_max_labelled_per_class_is_what_the_target_digits_allow():
    X, y = select_digits(*load_digits(), TARGET_DIGITS)
    X_lab, _, _, _ = few_labelled_split(X, y, MAX_LABELLED_PER_CLASS)
    assert len(X_lab) == 5 * MAX_LABELLED_PER_CLASS
    with pytest.raises(ValueError, match="cannot take 88 labelled examples"):
        few_labelled_split(X, y, MAX_LABELLED_PER_CLASS + 1)


def small_backbone() -> nn.Module:
    """A backbone with BatchNorm, to check that its running statistics are reset too."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


def test_transfer_model_replaces_only_the_last_layer_of_a_copy():
    pretrained = pretrained_classifier()
    before = copies(pretrained)
    set_seed(3)
    model = TransferModel(pretrained, num_classes=3)
    set_seed(3)
    expected_head = nn.Linear(8, 3)  # the new layer draws its weights from the global generator, first
    assert model.network.classifier[-1] is model.head
    assert torch.equal(model.head.weight, expected_head.weight) and torch.equal(model.head.bias, expected_head.bias)
    assert entries_not_from(pretrained, model) == ["classifier.3.weight", "classifier.3.bias"]
    assert isinstance(model.preprocess, nn.Identity)
    assert model.eval()(torch.rand(6, 1, 8, 8)).shape == (6, 3)
    with torch.no_grad():
        model.network.classifier[0].weight.add_(1.0)
    assert all_equal(before, pretrained)  # the model trains its own copy


def test_backbone_parameters_are_all_but_the_new_layer():
    model = TransferModel(pretrained_classifier(), num_classes=3)
    backbone = {id(p) for p in model.backbone_parameters()}
    head = {id(p) for p in model.head.parameters()}
    assert not backbone & head and backbone | head == {id(p) for p in model.parameters()}
    assert sum(p.numel() for p in model.backbone_parameters()) == 4 * 9 + 4 + 8 + 16 * 8 + 8


def test_preprocess_runs_before_the_network():
    model = TransferModel(pretrained_classifier(), 3, preprocess=ImageNetInput(nn.Identity()))
    model.network.features[0] = nn.Conv2d(3, 4, 3, padding=1)  # takes the 3 channels ImageNetInput makes
    assert model.eval()(torch.rand(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize(("build", "where", "in_features"), [
    (lambda: TinyVGG(1, 4, 5), "classifier.1", 16),
    (lambda: mobilenet_v3_small(weights=None), "classifier.3", 1024),
    (lambda: resnet18(weights=None), "fc", 512),
], ids=["tinyvgg", "mobilenet_v3_small", "resnet18"])
def test_the_last_layer_of_torchvision_style_models_is_found_and_replaced(build, where, in_features):
    pretrained = build()
    parent, name = last_layer(pretrained)
    assert getattr(parent, name) is pretrained.get_submodule(where)
    model = TransferModel(pretrained, num_classes=5)
    assert model.head is model.network.get_submodule(where)
    assert (model.head.in_features, model.head.out_features) == (in_features, 5)
    assert entries_not_from(pretrained, model) == [f"{where}.weight", f"{where}.bias"]


def test_a_model_without_a_linear_last_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot find the last layer of Sequential: no .classifier or .fc"):
        TransferModel(nn.Sequential(nn.Linear(4, 2)), 3)
    odd = SmallClassifier()
    odd.classifier[-1] = nn.Identity()
    with pytest.raises(ValueError, match="the last layer of SmallClassifier is Identity\\(\\), not a Linear layer"):
        TransferModel(odd, 3)


def test_feature_extraction_leaves_the_backbone_unchanged_while_the_new_layer_trains():
    model = TransferModel(pretrained_classifier(), 3)
    for parameter in model.backbone_parameters():
        parameter.requires_grad = False
    backbone_before = {k: v for k, v in copies(model.network).items() if not k.startswith("classifier.3.")}
    head_before = copies(model.head)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=0.01)
    one_training_step(model, optimizer)
    state = model.network.state_dict()
    assert all(torch.equal(value, state[name]) for name, value in backbone_before.items())  # incl. BatchNorm's
    assert none_equal(head_before, model.head.named_parameters())
    assert model.training and model.head.training and not model.network.features.training
    assert not model.network.classifier[2].training  # the frozen part's dropout is off, so its features are fixed
    X = torch.rand(4, 1, 8, 8)
    assert torch.equal(model(X), model(X))
    assert all(p.grad is None for p in model.backbone_parameters())


def test_fine_tuning_trains_every_layer_with_its_own_rate_and_leaves_the_pretrained_model_alone():
    pretrained = pretrained_classifier()
    pretrained_before = copies(pretrained)
    model = TransferModel(pretrained, 3)
    backbone_before = {name: p.clone() for name, p in model.network.named_parameters()}
    optimizer = torch.optim.Adam([{"params": model.backbone_parameters(), "lr": 0.001},
                                  {"params": model.head.parameters(), "lr": 0.01}])
    one_training_step(model, optimizer)
    assert none_equal(backbone_before, model.network.named_parameters())
    assert not torch.equal(model.network.features[1].running_mean, pretrained.features[1].running_mean)
    assert model.network.training  # not frozen: BatchNorm and dropout train too
    assert all_equal(pretrained_before, pretrained)
    # Adam's first step moves every weight by about its learning rate: the rates of the two groups show
    first_layer = (model.network.classifier[0].weight - backbone_before["classifier.0.weight"]).abs()
    new_layer = (model.head.weight - backbone_before["classifier.3.weight"]).abs()
    assert first_layer.max().item() == pytest.approx(0.001, rel=0.01)
    assert new_layer.max().item() == pytest.approx(0.01, rel=0.01)


def test_random_init_copy_has_new_weights_and_reset_statistics_and_is_seeded():
    original = small_backbone()
    original[1].running_mean.fill_(3.0)
    before = copies(original)
    set_seed(5)
    fresh = random_init_copy(original)
    conv_weight = fresh[0].weight.clone()
    assert not torch.equal(fresh[0].weight, original[0].weight)
    assert torch.equal(fresh[1].running_mean, torch.zeros(4))
    assert all_equal(before, original)
    set_seed(5)
    assert torch.equal(random_init_copy(original)[0].weight, conv_weight)


def test_imagenet_input_repeats_grey_into_three_channels():
    grey = torch.rand(2, 1, 4, 4)
    rgb = ImageNetInput(nn.Identity())(grey)
    assert rgb.shape == (2, 3, 4, 4)
    assert all(torch.equal(rgb[:, c], grey[:, 0]) for c in range(3))
    colour = torch.rand(2, 3, 4, 4)
    assert torch.equal(ImageNetInput(nn.Identity())(colour), colour)


def test_imagenet_preprocessing_maps_grey_digits_to_normalised_224_pixel_rgb():
    digits = load_digits()[0][:4]  # (4, 1, 8, 8) in [0, 1]
    rgb = ImageNetInput(WEIGHTS.transforms())(digits)
    assert rgb.shape == (4, 3, 224, 224) and rgb.dtype == torch.float32
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    grey = rgb * std + mean  # undo the normalisation: the three channels hold the same grey
    torch.testing.assert_close(grey[:, 1], grey[:, 0])
    torch.testing.assert_close(grey[:, 2], grey[:, 0])
    # recomputed independently: bilinear resize of the short side to 256, then the central 224 x 224
    resized = F.interpolate(digits, size=(256, 256), mode="bilinear", align_corners=False)
    torch.testing.assert_close(grey[:, :1], resized[..., 16:240, 16:240], atol=1e-5, rtol=0)


def test_imagenet_preprocessing_of_a_constant_image_by_hand():
    constant = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).expand(3, 1, 8, 8)  # three images: v = 0, 0.5, 1
    rgb = ImageNetInput(WEIGHTS.transforms())(constant)
    assert rgb[1, 0, 100, 7].item() == pytest.approx(0.0655022, abs=1e-5)  # (0.5 - 0.485) / 0.229, red
    assert rgb[0, 2, 0, 223].item() == pytest.approx(-1.8044444, abs=1e-5)  # (0 - 0.406) / 0.225, blue
    for i, v in enumerate([0.0, 0.5, 1.0]):
        for c in range(3):
            expected = torch.full((224, 224), (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
            torch.testing.assert_close(rgb[i, c], expected, atol=1e-5, rtol=0)


def test_cached_imagenet_weights_are_ready_and_the_constructor_reads_that_file(cached_weights):
    assert imagenet_weights_problem(WEIGHTS) == ""
    pretrained = mobilenet_v3_small(weights=WEIGHTS)  # the notebook's call, offline: the file is cached
    assert all(torch.equal(value, cached_weights[name]) for name, value in pretrained.state_dict().items())
    model = TransferModel(pretrained, 5, preprocess=ImageNetInput(WEIGHTS.transforms()))
    assert entries_not_from(pretrained, model) == ["classifier.3.weight", "classifier.3.bias"]
    assert torch.equal(model.network.classifier[0].weight, cached_weights["classifier.0.weight"])  # 576 -> 1024 kept
    assert model.eval()(torch.rand(2, 1, 8, 8)).shape == (2, 5)  # grey 8x8 digits in, 5 scores out


def test_without_the_file_and_offline_the_problem_names_the_file_and_the_folder(hub_cache):
    assert imagenet_weights_problem(WEIGHTS) == (
        f"{WEIGHTS} is not in the torch.hub cache ({hub_cache}) and cannot be downloaded (the network is "
        "switched off (COURSE_OFFLINE=1)); to use it offline, put mobilenet_v3_small-047dcff4.pth from "
        f"{WEIGHTS.url} in that folder")


def test_a_cached_file_that_would_run_code_is_refused_before_any_constructor_sees_it(hub_cache, tmp_path):
    marker = tmp_path / "payload-ran"
    write_unsafe_weights(cached_weights_path(WEIGHTS), marker)
    problem = imagenet_weights_problem(WEIGHTS)
    assert "in the cache cannot be used (UnpicklingError" in problem and "delete " in problem
    assert not marker.exists()


def test_shift_digits_moves_each_whole_image_on_a_larger_canvas():
    X = torch.arange(1.0, 1 + 2 * 3 * 3).reshape(2, 1, 3, 3)  # two 3x3 "images", no zero pixel
    shifted = shift_digits(X, make_generator(0), max_shift=2)
    assert shifted.shape == (2, 1, 7, 7)
    shifts = torch.randint(-2, 3, (2, 2), generator=make_generator(0)).tolist()  # the same draw, by hand
    for image, original, (down, right) in zip(shifted, X, shifts, strict=True):
        top, left = 2 + down, 2 + right
        assert torch.equal(image[:, top:top + 3, left:left + 3], original)  # nothing cut off or wrapped
        assert image.sum() == original.sum()  # zeros everywhere else
    assert torch.equal(shift_digits(X, make_generator(0), max_shift=2), shifted)  # seeded
    assert torch.equal(shift_digits(X, make_generator(0), max_shift=0), X)


def test_shifted_batches_cover_every_image_once_per_pass_with_new_shifts():
    X, y = torch.rand(10, 1, 4, 4) + 0.1, torch.arange(10)
    batches = ShiftedBatches(X, y, batch_size=4, seed=0, max_shift=1)
    first, second = list(batches), list(batches)
    assert len(batches) == 3 and [len(b[1]) for b in first] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in first]).tolist()) == list(range(10))
    for X_batch, y_batch in first:  # each image is its own, moved on a 6x6 canvas
        assert X_batch.shape[1:] == (1, 6, 6)
        assert torch.allclose(X_batch.sum((1, 2, 3)), X[y_batch].sum((1, 2, 3)))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))  # a new pass, new draws


def test_head_inputs_are_what_the_backbone_hands_to_the_new_layer():
    model = TransferModel(pretrained_classifier(), 3).train()
    X = torch.rand(5, 1, 8, 8)
    features = head_inputs(model, X, batch_size=2)  # in three batches
    assert features.shape == (5, 8) and not features.requires_grad
    assert model.training  # its mode is given back
    model.eval()
    with torch.no_grad():
        expected = model.network.classifier[:-1](model.network.features(X))  # dropout off in eval mode
        torch.testing.assert_close(model.head(features), model(X))
    torch.testing.assert_close(features, expected)


def test_a_head_trained_on_head_inputs_equals_one_trained_through_the_frozen_model():
    def frozen(seed: int) -> tuple[TransferModel, torch.optim.Optimizer]:
        set_seed(seed)
        model = TransferModel(pretrained_classifier(), 3)
        for parameter in model.backbone_parameters():
            parameter.requires_grad = False
        return model, torch.optim.Adam(model.head.parameters(), lr=0.01)

    X, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    whole, whole_optimizer = frozen(0)
    cached, cached_optimizer = frozen(0)
    features = head_inputs(cached, X)
    for model, optimizer, inputs in ((whole, whole_optimizer, X), (cached.head, cached_optimizer, features)):
        model.train()
        for _ in range(5):
            loss = F.cross_entropy(model(inputs), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.testing.assert_close(whole.head.weight, cached.head.weight)
    torch.testing.assert_close(whole.head.bias, cached.head.bias)


def test_pretrain_source_model_trains_saves_and_then_reuses_the_whole_model(tmp_path, monkeypatch):
    first, description = pretrain_source_model(tmp_path, CPU, hidden_units=4, seed=3, epochs=1)
    assert description.startswith("trained now on 721 images, shifted anew in each of 1 epoch, in ")
    assert isinstance(first, TinyVGG) and first.classifier[-1].out_features == 5  # digits 0-4
    saved = torch.load(next(tmp_path.glob("tinyvgg_digits0-4_*.pt")), weights_only=True)
    assert set(saved["model"]) == set(first.state_dict())  # the classifier too, not only the features

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(transfer, "fit", no_training)
    again, description = pretrain_source_model(tmp_path, CPU, hidden_units=4, seed=3, epochs=1)
    assert description.startswith("loaded from tinyvgg_digits0-4_") and "earlier run" in description
    assert all_equal(copies(first), again)
    with pytest.raises(AssertionError, match="trained again"):  # another configuration: another file
        pretrain_source_model(tmp_path, CPU, hidden_units=4, seed=4, epochs=1)
    with pytest.raises(AssertionError, match="trained again"):  # other shifts: another file
        pretrain_source_model(tmp_path, CPU, hidden_units=4, seed=3, epochs=1, max_shift=0)


def test_a_damaged_saved_model_is_trained_again(tmp_path):
    pretrain_source_model(tmp_path, CPU, hidden_units=4, epochs=1)
    saved = next(tmp_path.glob("tinyvgg_*.pt"))
    saved.write_bytes(b"not a torch file")
    _, description = pretrain_source_model(tmp_path, CPU, hidden_units=4, epochs=1)
    assert "trained now" in description
    assert torch.load(saved, weights_only=True)["config"]["hidden_units"] == 4
