"""Papermill runs of notebooks/09_transfer_learning.ipynb.

The default run, as a learner meets it offline (self-pretrained model), must give the committed numbers and
back every claim of the notebook's prose; the ImageNet branch runs on a weights file placed in a temporary
``torch.hub`` cache, with torchvision's real weights enum, constructor and preprocessing; bad parameters stop
the notebook before it writes anything.
"""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

from helpers.downloads import cached_weights_path
from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner

pytestmark = pytest.mark.notebook

NAME = "09_transfer_learning"
ACCURACIES = ("feature_extraction_acc", "fine_tuning_acc", "fine_tuning_one_rate_acc", "from_scratch_acc")
WEIGHTS = MobileNet_V3_Small_Weights.DEFAULT


def printed(tmp_path) -> str:
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text(encoding="utf-8"))["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_default_run_gives_the_committed_numbers_and_backs_the_claims(tmp_path):
    records = execute_like_a_learner(NAME, tmp_path)
    assert_reproduces_committed(NAME, records, ACCURACIES)
    assert records["backbone_source"] == "self-pretrained TinyVGG (source task: digits 0-4)"
    assert (records["seeds"], records["epochs"], records["labelled_per_class"]) == (5, 100, 5)
    # Only the last layer is new; fine-tuning's pretrained layers learn at a tenth of the new layer's rate.
    assert records["replaced_entries"] == "classifier.1.weight, classifier.1.bias"
    assert records["head_lr"] / records["backbone_lr"] == pytest.approx(10)
    # "Every method reached 100% on its labelled images, and no mean test curve moved by more than 0.3 points
    # over the last 25 epochs": the comparison is not cut short.
    assert records["min_final_train_acc"] == 1.0
    assert records["max_late_change"] < 0.01
    extraction, fine_tuning, one_rate, scratch = (records[key] for key in ACCURACIES)
    assert min(extraction, fine_tuning, one_rate, scratch) > 0.6  # chance is 0.2
    # "Fine-tuning beats feature extraction: ... on average, and higher on every one of the five draws."
    assert fine_tuning - extraction > 0.02
    assert records["draws_fine_tuning_ahead"] == records["seeds"]
    # "With one rate for all layers, fine-tuning ends lower on average, though its ± band overlaps the tenth's."
    assert 0.01 < fine_tuning - one_rate < records["fine_tuning_std"] + records["fine_tuning_one_rate_std"]
    # "Training from scratch ends highest": transfer from the self-pretrained model does not pay.
    assert scratch - max(extraction, fine_tuning, one_rate) > 0.01
    text = printed(tmp_path)
    assert text.count("Not using ImageNet weights: WEIGHTS = 'self' asks for the TinyVGG.") == 1  # the default
    assert "trained now on 721 images" in text and "trainable parameters: 325 of 7,445" in text
    assert len(list((tmp_path / "data" / "pretrained").glob("tinyvgg_digits0-4_*.pt"))) == 1
    assert (tmp_path / "runs" / "transfer_comparison.png").stat().st_size > 1000


def test_imagenet_branch_builds_mobilenet_from_the_cache_and_follows_the_recipe(tmp_path, monkeypatch):
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(mobilenet_v3_small(weights=None).state_dict(), cache / cached_weights_path(WEIGHTS).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # inherited by the kernel papermill starts
    records = execute(NAME, tmp_path, WEIGHTS="auto", SMOKE=True, SEEDS=1, EPOCHS=2)
    assert records["backbone_source"] == f"ImageNet-pretrained mobilenet_v3_small ({WEIGHTS})"
    # Only the last Linear(1024, 1000) is replaced; the pretrained Linear(576, 1024) before it is kept.
    assert records["replaced_entries"] == "classifier.3.weight, classifier.3.bias"
    assert records["new_last_layer"] == "Linear(in_features=1024, out_features=5, bias=True)"
    assert 10 <= records["head_lr"] / records["backbone_lr"] <= 100
    text = printed(tmp_path)
    assert "mobilenet_v3_small-047dcff4.pth is cached: True" in text and "Not using ImageNet weights" not in text
    assert "trainable parameters: 5,125 of 1,522,981" in text  # feature extraction: only 1024 x 5 + 5 train
    assert "feature extraction changed the backbone: False" in text  # BatchNorm statistics included
    assert not (tmp_path / "data").exists()  # nothing was pretrained by the series
    assert records["epochs"] == 2 and records["seeds"] == 1


def test_auto_without_the_file_or_a_network_explains_and_uses_the_self_pretrained_model(tmp_path):
    records = execute(NAME, tmp_path, WEIGHTS="auto", SMOKE=True, SEEDS=1, EPOCHS=2)  # empty TORCH_HOME, offline
    assert records["backbone_source"] == "self-pretrained TinyVGG (source task: digits 0-4)"
    text = printed(tmp_path)
    assert text.count("Not using ImageNet weights: ") == 1  # one explanation, naming the file to put in the cache
    assert "put mobilenet_v3_small-047dcff4.pth from https://download.pytorch.org" in text


@pytest.mark.parametrize(("name", "value"), [("WEIGHTS", "imagenet"), ("LABELLED_PER_CLASS", 88), ("SEEDS", 0)])
def test_bad_parameter_stops_before_anything_is_written(tmp_path, name, value):
    error = execute_expecting_error(NAME, tmp_path, **{name: value})
    assert error.startswith("ParameterError:") and f"{name} = {value!r}" in error
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()
