"""Papermill runs of notebooks/09_transfer_learning.ipynb.

Every claim of the prose is checked on the committed run and on a learner's rerun with another seed set (whose
headline numbers must lie within the measured spread). The ImageNet branch runs on a weights file placed in a
temporary ``torch.hub`` cache, with torchvision's real weights enum, builder and preprocessing; a bad parameter
stops the notebook before it writes anything.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

from helpers.downloads import cached_weights_path
from helpers.params import ParameterError, check_params
from helpers.series import default_parameters
from helpers.transfer import WEIGHTS_CHOICES
from tests.nbrun import (
    assert_within_spread,
    execute,
    execute_expecting_error,
    notebook_path,
    printed,
)

pytestmark = pytest.mark.notebook

NAME = "09_transfer_learning"
WEIGHTS = MobileNet_V3_Small_Weights.DEFAULT
COUNTS = (1, 2, 5, 20, 50)
METHODS = ("feature_extraction", "fine_tuning", "from_scratch", "random_frozen")
TEST_IMAGE = 1 / 448  # one of the 448 test images: an accuracy's smallest step on one draw


def acc(records, method: str, n: int) -> float:
    return records[f"{method}_acc_{n}"]


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], [
        "transfer_gain_fewest_labels", "transfer_gain_most_labels", "feature_extraction_acc_1",
        "from_scratch_acc_1", "fine_tuning_acc_50", "from_scratch_acc_50", "random_frozen_acc_1",
    ], floor=TEST_IMAGE)


def test_the_setting_the_prose_describes(records):
    assert records["backbone_source"] == "self-pretrained TinyVGG (source task: shifted digits 0-4)"
    assert (records["seeds"], records["epochs"], records["label_counts"]) == (5, 100, "1, 2, 5, 20, 50")
    assert (records["fewest_labels"], records["most_labels"]) == (1, 50)
    # Only the last layer is new; fine-tuning's pretrained layers learn at a tenth of the new layer's rate.
    assert records["replaced_entries"] == "classifier.1.weight, classifier.1.bias"
    assert records["head_lr"] / records["backbone_lr"] == pytest.approx(10)
    # "both ways end with the same new layer, up to rounding"
    assert records["extraction_equals_cached"] is True


def test_the_recorded_gains_are_the_better_transfer_method_minus_from_scratch(records):
    for n, key in ((1, "transfer_gain_fewest_labels"), (50, "transfer_gain_most_labels")):
        best = max(acc(records, "feature_extraction", n), acc(records, "fine_tuning", n))
        assert records[key] == pytest.approx(best - acc(records, "from_scratch", n), abs=1e-12)


def gain(records, n: int) -> float:
    """The better transfer method's mean test accuracy minus from scratch's, at n labels per digit."""
    return max(acc(records, "feature_extraction", n), acc(records, "fine_tuning", n)) - acc(records, "from_scratch", n)


def test_transfer_pays_with_scarce_labels(records):
    # "With 1 or 2 labelled images per digit, both transfer methods end above training from scratch"
    for n in (1, 2):
        for method in ("feature_extraction", "fine_tuning"):
            assert acc(records, method, n) - acc(records, "from_scratch", n) > 0.02, (method, n)
    # "with 1 per digit the gain is large, about 10 points or more, while from scratch stays close to the 20% of
    # guessing"
    assert 0.08 < records["transfer_gain_fewest_labels"] < 0.25
    assert acc(records, "from_scratch", 1) < 0.3


def test_transfer_stops_paying_as_labels_grow(records):
    # "By 20 labels per digit the gain is a few points at most", and "Where exactly the gain fades, somewhere between
    # 2 and 20 labels per digit": a clear gain at 1 and 2, at most a few points at 20
    assert gain(records, 20) < 0.06
    assert gain(records, 1) > 0.04 and gain(records, 2) > 0.04
    # "at 50 per digit from scratch is level with the better transfer method or ahead of it: the gain is gone"
    assert records["transfer_gain_most_labels"] < 0.02
    assert records["transfer_gain_fewest_labels"] - records["transfer_gain_most_labels"] > 0.08
    # "from 20 labels per digit feature extraction is well below fine-tuning, and at 50 well below from scratch too"
    for n in (20, 50):
        assert acc(records, "fine_tuning", n) - acc(records, "feature_extraction", n) > 0.03, n
    assert acc(records, "from_scratch", 50) - acc(records, "feature_extraction", 50) > 0.05


def test_the_random_backbone_control(records):
    # "The frozen random backbone ... stays far below the pretrained frozen one at every label count"
    for n in COUNTS:
        assert acc(records, "feature_extraction", n) - acc(records, "random_frozen", n) > 0.05, n
    # "and far below from scratch from 5 labels per digit on"
    for n in (5, 20, 50):
        assert acc(records, "from_scratch", n) - acc(records, "random_frozen", n) > 0.1, n


def test_training_accuracies_as_the_prose_reads_them(records):
    # "From scratch fits all of its labelled images and fine-tuning all or nearly all"
    for n in COUNTS:
        assert records[f"fine_tuning_lowest_train_acc_{n}"] >= 0.88, n
        assert records[f"from_scratch_lowest_train_acc_{n}"] >= 0.98, n
    # "The two frozen methods miss some with 20 or more labels per digit"
    for n in (20, 50):
        assert records[f"feature_extraction_lowest_train_acc_{n}"] < 0.97, n
        assert records[f"random_frozen_lowest_train_acc_{n}"] < 0.97, n
    # "and the random frozen backbone from 2 per digit on" (measured: 0.4 to 0.7)
    for n in (2, 5):
        assert records[f"random_frozen_lowest_train_acc_{n}"] < 0.97, n


def test_the_rerun_prints_what_the_prose_says_and_writes_its_files(perturbed):
    _, tmp_path = perturbed
    text = printed(tmp_path / f"{NAME}.out.ipynb")
    assert text.count("Not using ImageNet weights: WEIGHTS = 'self' asks for the TinyVGG.") == 1  # the default
    assert "trained now on 721 images, shifted anew in each of 40 epochs" in text
    assert "no prediction: mobilenet_v3_small-047dcff4.pth is not in the torch.hub cache" in text
    assert "target images: (896, 1, 12, 12)" in text and "trainable parameters: 325 of 7,445" in text
    assert "feature extraction changed the backbone: False" in text
    assert "fine-tuning changed the backbone:        True" in text
    assert "100 trainings: 4 methods x 5 label counts x 5 draws" in text
    assert len(list((tmp_path / "data" / "pretrained").glob("tinyvgg_digits0-4_*.pt"))) == 1
    assert (tmp_path / "runs" / "transfer_sweep.png").stat().st_size > 1000


def test_imagenet_branch_builds_mobilenet_from_the_cache_predicts_and_follows_the_recipe(tmp_path, monkeypatch):
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
    assert records["head_lr"] / records["backbone_lr"] == pytest.approx(10)
    assert records["extraction_equals_cached"] is True  # the frozen MobileNet gives the same features both ways
    text = printed(tmp_path / f"{NAME}.out.ipynb")
    assert "mobilenet_v3_small-047dcff4.pth is cached: True" in text and "Not using ImageNet weights" not in text
    # one prediction with ImageNet's category names (random weights here: any three of them)
    line = next(line for line in text.splitlines() if line.startswith("ImageNet's MobileNet on flower.jpg: "))
    named = line.split(": ", 1)[1].split(", ")
    assert len(named) == 3 and all(name.rsplit(" ", 1)[0] in WEIGHTS.meta["categories"] for name in named)
    assert "trainable parameters: 5,125 of 1,522,981" in text  # feature extraction: only 1024 x 5 + 5 train
    assert "feature extraction changed the backbone: False" in text  # BatchNorm statistics included
    assert not (tmp_path / "data").exists()  # nothing was pretrained by the series
    assert records["epochs"] == 2 and records["seeds"] == 1 and records["label_counts"] == "1, 5"


def test_auto_without_the_file_or_a_network_explains_and_uses_the_self_pretrained_model(tmp_path):
    records = execute(NAME, tmp_path, WEIGHTS="auto", SMOKE=True, SEEDS=1, EPOCHS=2)  # empty TORCH_HOME, offline
    assert records["backbone_source"] == "self-pretrained TinyVGG (source task: shifted digits 0-4)"
    text = printed(tmp_path / f"{NAME}.out.ipynb")
    assert text.count("Not using ImageNet weights: ") == 1  # one explanation, naming the file to put in the cache
    assert "put mobilenet_v3_small-047dcff4.pth from https://download.pytorch.org" in text
    assert "trained now on 721 images, shifted anew in each of 2 epochs" in text  # SMOKE pretrains briefly


def test_a_bad_parameter_stops_the_notebook_before_anything_is_written(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, WEIGHTS="imagenet")
    assert error.startswith("ParameterError:") and "WEIGHTS = 'imagenet'" in error
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def validate(**changed) -> None:
    """The notebook's validation cell, on its default parameters with ``changed`` ones: no kernel needed."""
    values = {**default_parameters(notebook_path(NAME)), **changed}
    values.pop("DEVICE")  # checked by get_device, not check_params
    check_params(values, choices={"WEIGHTS": list(WEIGHTS_CHOICES)})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SEEDS", 0, "SEEDS = 0 is not allowed: must be a whole number greater than 0"),
    ("EPOCHS", 2.5, "EPOCHS = 2.5 is not allowed"),
    ("LEARNING_RATE", -0.1, "LEARNING_RATE = -0.1 is not allowed"),
    ("WEIGHTS", "imagenet", "WEIGHTS = 'imagenet' is not allowed: choose one of 'auto', 'self'."),
])
def test_the_validation_cell_refuses_bad_values(name, value, message):
    validate()  # the defaults pass
    with pytest.raises(ParameterError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        validate(**{name: value})
