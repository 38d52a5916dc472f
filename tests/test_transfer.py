"""Unit tests for helpers/transfer.py (09_transfer_learning). None of them touches the network."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import get_model
from torchvision.transforms import v2

import helpers.transfer as transfer
from helpers.data import load_digits
from helpers.device import set_seed
from helpers.engine import train_one_epoch
from helpers.transfer import (
    MAX_LABELLED_PER_CLASS,
    TARGET_DIGITS,
    ImageNetInput,
    TransferModel,
    WeightsUnavailableError,
    cached_weights_path,
    fetch_imagenet_state_dict,
    few_labelled_split,
    load_pretrained_backbone,
    random_init_copy,
    select_digits,
)

CPU = torch.device("cpu")


class FakeWeights:
    """Stands in for a torchvision weights enum value: a URL, metadata and a (small, fast) preprocessing."""

    url = "https://download.pytorch.org/models/mobilenet_v3_small-0123abcd.pth"
    meta = {"categories": ["a", "b"], "num_params": 2_542_856}

    def transforms(self) -> nn.Module:
        return v2.Compose([v2.Resize(36), v2.CenterCrop(32), v2.Normalize([0.5] * 3, [0.25] * 3)])

    def __str__(self) -> str:
        return "FakeWeights.TEST"


@pytest.fixture
def hub_dir(monkeypatch, tmp_path) -> Path:
    """An empty torch.hub cache in tmp_path."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch, hub_dir) -> list[str]:
    """No cached weights, and a download that fails as on a machine without internet; returns the URLs tried."""
    tried: list[str] = []

    def no_network(url: str, destination: Path, timeout: float) -> None:
        tried.append(url)
        raise OSError("no connection to download.pytorch.org: offline in this test")

    monkeypatch.setattr(transfer, "_download", no_network)
    return tried


@pytest.fixture
def fake_weights(monkeypatch) -> FakeWeights:
    weights = FakeWeights()
    monkeypatch.setattr(transfer, "get_model_weights", lambda arch: type("Enum", (), {"DEFAULT": weights}))
    return weights


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


def test_falls_back_to_a_self_pretrained_backbone_with_an_explanation(offline, tmp_path):
    backbone, description = load_pretrained_backbone("auto", tmp_path / "pre", CPU, hidden_units=4,
                                                     seed=0, source_epochs=1)
    first_line, *explanation = description.splitlines()
    assert first_line == "self-pretrained TinyVGG (source task: digits 0-4)"
    text = " ".join(explanation)
    assert "ImageNet weights are not available" in text and "offline in this test" in text
    assert "put mobilenet_v3_small-047dcff4.pth from https://download.pytorch.org" in text
    assert "trained now on 721 images for 1 epoch in" in text
    assert offline == ["https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth"]
    assert backbone(torch.rand(2, 1, 8, 8)).shape == (2, 4, 2, 2)
    assert len(list((tmp_path / "pre").glob("tinyvgg_digits0-4_*.pt"))) == 1


def test_weights_self_does_not_look_for_imagenet_weights(offline, tmp_path):
    _, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    assert offline == []
    assert description.startswith("self-pretrained TinyVGG")
    assert "WEIGHTS = 'self'" in description


def test_a_saved_self_pretrained_backbone_is_reused_with_the_same_config(offline, tmp_path, monkeypatch):
    first, _ = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=3, source_epochs=1)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(transfer, "fit", no_training)
    again, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=3, source_epochs=1)
    assert "loaded from tinyvgg_digits0-4_" in description and "earlier run" in description
    assert all_equal(copies(first), again)
    with pytest.raises(AssertionError, match="trained again"):  # another configuration: another file
        load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, seed=4, source_epochs=1)


def test_a_damaged_saved_backbone_is_trained_again(offline, tmp_path):
    load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    saved = next(tmp_path.glob("tinyvgg_*.pt"))
    saved.write_bytes(b"not a torch file")
    _, description = load_pretrained_backbone("self", tmp_path, CPU, hidden_units=4, source_epochs=1)
    assert "trained now" in description
    assert torch.load(saved, weights_only=True)["config"]["hidden_units"] == 4


def write_fake_imagenet_file(path: Path) -> None:
    state = get_model("mobilenet_v3_small", weights=None).state_dict()
    state["features.0.0.weight"].fill_(0.5)  # a mark to recognise these weights by
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def check_imagenet_backbone(backbone: nn.Module) -> None:
    assert isinstance(backbone[0], ImageNetInput)
    assert torch.all(backbone[1].features[0][0].weight == 0.5)
    assert backbone.eval()(torch.rand(2, 1, 8, 8)).shape == (2, 576)  # grey 8x8 in, 576 features out
    model = TransferModel(backbone, 5, torch.rand(3, 1, 8, 8))
    assert model.num_features == 576 and model(torch.rand(3, 1, 8, 8)).shape == (3, 5)


def test_cached_imagenet_weights_are_used_without_a_download(hub_dir, fake_weights, monkeypatch, tmp_path):
    path = cached_weights_path(fake_weights)
    assert path == hub_dir / "checkpoints" / "mobilenet_v3_small-0123abcd.pth"
    write_fake_imagenet_file(path)

    def no_download(*args):
        raise AssertionError("downloaded although cached")

    monkeypatch.setattr(transfer, "_download", no_download)
    backbone, description = load_pretrained_backbone("auto", tmp_path / "pre", CPU)
    assert description.startswith("ImageNet-pretrained mobilenet_v3_small (FakeWeights.TEST)\n")
    check_imagenet_backbone(backbone)
    assert not (tmp_path / "pre").exists()  # nothing pretrained


def test_downloaded_imagenet_weights_go_to_the_cache_and_are_used(hub_dir, fake_weights, monkeypatch, tmp_path):
    calls = []

    def download(url: str, destination: Path, timeout: float) -> None:
        calls.append((url, destination, timeout))
        write_fake_imagenet_file(destination)

    monkeypatch.setattr(transfer, "_download", download)
    backbone, description = load_pretrained_backbone("auto", tmp_path, CPU, download_timeout=2.0)
    assert calls == [(FakeWeights.url, hub_dir / "checkpoints" / "mobilenet_v3_small-0123abcd.pth", 2.0)]
    assert description.startswith("ImageNet-pretrained")
    check_imagenet_backbone(backbone)


def test_fetch_without_download_or_with_a_damaged_file_says_why(hub_dir, fake_weights):
    with pytest.raises(WeightsUnavailableError, match=r"FakeWeights.TEST is not in the torch.hub cache"):
        fetch_imagenet_state_dict(fake_weights, download=False)
    path = cached_weights_path(fake_weights)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(WeightsUnavailableError, match="in the cache cannot be used"):
        fetch_imagenet_state_dict(fake_weights)


def test_a_server_that_does_not_answer_fails_fast(monkeypatch):
    def hanging(*args, **kwargs):
        time.sleep(30)  # like a name lookup or connection that never returns

    monkeypatch.setattr(urllib.request, "urlopen", hanging)
    started = time.perf_counter()
    with pytest.raises(OSError, match=r"no connection to example.invalid: no answer within 0.2 s"):
        transfer._check_reachable("https://example.invalid/w.pth", timeout=0.2)
    assert time.perf_counter() - started < 2


def test_an_offline_download_fails_with_the_reason_and_keeps_the_socket_timeout(monkeypatch, tmp_path):
    def refused(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", refused)
    previous = socket.getdefaulttimeout()
    with pytest.raises(OSError, match="no connection to example.invalid: .*Name or service not known"):
        transfer._download("https://example.invalid/w-0123abcd.pth", tmp_path / "w-0123abcd.pth", timeout=1.0)
    assert socket.getdefaulttimeout() == previous
    assert not (tmp_path / "w-0123abcd.pth").exists()


def test_a_server_that_answers_with_an_http_error_counts_as_reachable(monkeypatch):
    def method_not_allowed(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 405, "Method Not Allowed", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", method_not_allowed)
    transfer._check_reachable("https://example.invalid/w.pth", timeout=1.0)  # no error: the download decides
