"""Unit tests for helpers/transfer.py (09_transfer_learning). None of them touches the network.

The ImageNet tests use torchvision's real ``MobileNet_V3_Small_Weights`` enum and its real
preprocessing; the weights file is written here into a temporary ``TORCH_HOME`` cache
(the hash is only checked on download, so any state dict of the right shape will do).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNet_V3_Small_Weights

import helpers.transfer as transfer
from helpers.data import few_labelled_split, load_digits, select_digits
from helpers.device import set_seed
from helpers.downloads import OFFLINE_ENV, WeightsUnavailableError, cached_weights_path
from helpers.engine import train_one_epoch
from helpers.transfer import (
    IMAGENET_ARCH,
    MAX_LABELLED_PER_CLASS,
    TARGET_DIGITS,
    ImageNetInput,
    TransferModel,
    imagenet_backbone,
    load_pretrained_backbone,
    random_init_copy,
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


def small_backbone() -> nn.Module:
    """A backbone with BatchNorm, whose running statistics must not move while it is frozen."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


def one_training_step(model: TransferModel, optimizer: torch.optim.Optimizer) -> None:
    set_seed(1)
    X, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    train_one_epoch(model, [(X, y)], nn.CrossEntropyLoss(), optimizer, CPU)


def copies(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def all_equal(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return all(torch.equal(before[name], value) for name, value in module.state_dict().items())


def none_equal(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return not any(torch.equal(before[name], value) for name, value in module.named_parameters())


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


def test_transfer_model_finds_the_feature_count_and_copies_the_backbone():
    backbone = small_backbone()
    model = TransferModel(backbone, num_classes=3, example=torch.rand(5, 1, 8, 8), head_hidden=7)
    assert model.num_features == 4 * 2 * 2
    assert model(torch.rand(6, 1, 8, 8)).shape == (6, 3)
    assert model.backbone is not backbone
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [7, 3]


def test_feature_extraction_leaves_the_backbone_unchanged_while_the_head_trains():
    set_seed(0)
    model = TransferModel(small_backbone(), 3, torch.rand(2, 1, 8, 8))
    for parameter in model.backbone.parameters():
        parameter.requires_grad = False
    backbone_before, head_before = copies(model.backbone), copies(model.head)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    one_training_step(model, optimizer)
    assert all_equal(backbone_before, model.backbone)  # weights and BatchNorm running statistics
    assert none_equal(head_before, model.head)
    assert model.training and model.head.training and not model.backbone.training
    assert all(p.grad is None for p in model.backbone.parameters())


def test_fine_tuning_changes_backbone_and_head_but_not_the_original_backbone():
    set_seed(0)
    original = small_backbone()
    original_before = copies(original)
    model = TransferModel(original, 3, torch.rand(2, 1, 8, 8))
    backbone_before, head_before = copies(model.backbone), copies(model.head)
    optimizer = torch.optim.Adam([{"params": model.backbone.parameters(), "lr": 0.005},
                                  {"params": model.head.parameters(), "lr": 0.01}])
    one_training_step(model, optimizer)
    assert none_equal(backbone_before, model.backbone)
    assert none_equal(head_before, model.head)
    assert model.backbone.training  # not frozen: BatchNorm trains too
    assert all_equal(original_before, original)


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


def test_bad_weights_value_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"weights must be one of 'auto', 'self', got 'imagenet'"):
        load_pretrained_backbone("imagenet", tmp_path, CPU)


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


def test_imagenet_backbone_holds_the_cached_weights_and_gives_576_features(cached_weights):
    backbone = imagenet_backbone(IMAGENET_ARCH, WEIGHTS)
    assert isinstance(backbone[0], ImageNetInput)
    loaded = backbone[1].state_dict()
    assert set(loaded) == {key for key in cached_weights if not key.startswith("classifier.")}
    assert all(torch.equal(loaded[key], cached_weights[key]) for key in loaded)
    assert isinstance(backbone[1].classifier, nn.Identity)
    assert backbone.eval()(torch.rand(2, 1, 8, 8)).shape == (2, 576)  # grey 8x8 in, 576 features out
    model = TransferModel(backbone, 5, torch.rand(3, 1, 8, 8))
    assert model.num_features == 576 and model(torch.rand(3, 1, 8, 8)).shape == (3, 5)


def test_imagenet_backbone_without_pretraining_needs_no_file(hub_cache, monkeypatch):
    def no_fetch(weights):
        raise AssertionError("looked for weights")

    monkeypatch.setattr(transfer, "fetch_weights", no_fetch)
    set_seed(0)
    backbone = imagenet_backbone(IMAGENET_ARCH, WEIGHTS, pretrained=False)
    reference = mobilenet_state(seed=0)  # the same seed, the same random initialisation
    assert all(torch.equal(value, reference[key]) for key, value in backbone[1].state_dict().items())
    assert not hub_cache.exists()


def test_a_cached_file_that_would_run_code_is_refused_before_the_model_loads_it(hub_cache, tmp_path):
    marker = tmp_path / "payload-ran"
    write_unsafe_weights(cached_weights_path(WEIGHTS), marker)
    with pytest.raises(WeightsUnavailableError, match="in the cache cannot be used"):
        imagenet_backbone(IMAGENET_ARCH, WEIGHTS)
    assert not marker.exists()  # torchvision's constructor (weights_only=False) never saw the file
    backbone, description = load_pretrained_backbone("auto", tmp_path / "pre", CPU, hidden_units=4,
                                                     source_epochs=1)
    assert not marker.exists()
    assert description.startswith("self-pretrained TinyVGG (source task: digits 0-4)\n")
    assert "ImageNet weights are not available: " in description and "UnpicklingError" in description


def test_auto_uses_the_cached_imagenet_weights(cached_weights, tmp_path):
    backbone, description = load_pretrained_backbone("auto", tmp_path / "pre", CPU)
    first_line, second_line = description.splitlines()
    assert first_line == f"ImageNet-pretrained mobilenet_v3_small ({WEIGHTS})"
    assert second_line.startswith(f"Loaded torchvision's {WEIGHTS} from ")
    assert second_line.endswith("hub/checkpoints.")
    assert torch.equal(backbone[1].features[0][0].weight, cached_weights["features.0.0.weight"])
    assert not (tmp_path / "pre").exists()  # nothing pretrained


def test_falls_back_to_a_self_pretrained_backbone_naming_the_cache_folder(hub_cache, tmp_path):
    backbone, description = load_pretrained_backbone("auto", tmp_path / "pre", CPU, hidden_units=4,
                                                     seed=0, source_epochs=1)
    first_line, *explanation = description.splitlines()
    assert first_line == "self-pretrained TinyVGG (source task: digits 0-4)"
    assert explanation[0] == (
        f"ImageNet weights are not available: {WEIGHTS} is not in the torch.hub cache ({hub_cache}) and cannot "
        "be downloaded (the network is switched off (COURSE_OFFLINE=1)); to use it offline, put "
        f"mobilenet_v3_small-047dcff4.pth from {WEIGHTS.url} in that folder.")
    assert "trained now on 721 images for 1 epoch in" in explanation[1]
    assert backbone(torch.rand(2, 1, 8, 8)).shape == (2, 4, 2, 2)
    assert len(list((tmp_path / "pre").glob("tinyvgg_digits0-4_*.pt"))) == 1


def test_weights_self_does_not_look_for_imagenet_weights(hub_cache, tmp_path, monkeypatch):
    def no_fetch(weights):
        raise AssertionError("looked for ImageNet weights")

    monkeypatch.setattr(transfer, "fetch_weights", no_fetch)
    _, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    assert description.startswith("self-pretrained TinyVGG")
    assert "WEIGHTS = 'self'" in description


def test_a_saved_self_pretrained_backbone_is_reused_with_the_same_config(tmp_path, monkeypatch):
    first, _ = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=3, source_epochs=1)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(transfer, "fit", no_training)
    again, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=3, source_epochs=1)
    assert "loaded from tinyvgg_digits0-4_" in description and "earlier run" in description
    assert all_equal(copies(first), again)
    with pytest.raises(AssertionError, match="trained again"):  # another configuration: another file
        load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=4, source_epochs=1)


def test_a_damaged_saved_backbone_is_trained_again(tmp_path):
    load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    saved = next(tmp_path.glob("tinyvgg_*.pt"))
    saved.write_bytes(b"not a torch file")
    _, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    assert "trained now" in description
    assert torch.load(saved, weights_only=True)["config"]["hidden_units"] == 4
