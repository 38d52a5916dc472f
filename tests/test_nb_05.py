"""Papermill runs of notebooks/05_experiment.ipynb: every claim of the prose on the committed run and on a
learner's rerun with another seed set (whose headline numbers must lie within the measured spread), the
notebook's interval rule against a table of t values, a SMOKE run read back through its TensorBoard logs, the
augmentation layer, and a bad parameter."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from helpers.data import load_digits
from helpers.tracking import ExperimentConfig
from tests.nbrun import (
    assert_within_spread,
    default_parameter,
    execute,
    execute_expecting_error,
    notebook_path,
    perturbed_seed,
)

pytestmark = pytest.mark.notebook

NAME = "05_experiment"
VAL_IMAGES, TEST_IMAGES = 288, 359
CHANGES = ["bigger_model", "lower_lr", "more_epochs", "augmentation", "half_the_data"]
CONFIGS = ["base", *CHANGES, "final_round"]
COMPARISONS = [*CHANGES, "augmentation_30_epochs", "final_round"]  # each has _diff_mean, _diff_low, _diff_high
SEEDS = default_parameter(NAME, "SEEDS")


def images(fraction: float, total: int) -> int:
    return round(fraction * total)


def base_config(epochs: int) -> ExperimentConfig:
    """05's base configuration, named by helpers.tracking (the notebook builds it the same way)."""
    return ExperimentConfig(model="tinyvgg", hidden_units=16, learning_rate=0.003, epochs=epochs, augment=False,
                            data_fraction=1.0)


def grid_configs(epochs: int) -> list[ExperimentConfig]:
    """The base, the five changes and the final round (05 sections 4 and 6)."""
    base = base_config(epochs)
    longer = replace(base, epochs=3 * epochs)
    return [base, replace(base, hidden_units=32), replace(base, learning_rate=0.001), longer,
            replace(base, augment=True), replace(base, data_fraction=0.5), replace(longer, augment=True)]


def read_runs(folder) -> dict[str, dict]:
    """Run folder name -> its final hparam/val_acc, val losses and seed, read with TensorBoard's reader."""
    runs = {}
    for run in sorted(folder.iterdir()):
        events = EventAccumulator(str(run)).Reload()
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        runs[run.name] = {
            "val_acc": events.Scalars("hparam/val_acc")[-1].value,
            "val_losses": [e.value for e in events.Scalars("loss/val")],
            "steps": [e.step for e in events.Scalars("accuracy/val")],
            "hparams": start.session_start_info.hparams,
            "images": events.Tags()["images"],
        }
    return runs


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], [
        "best_test_acc", "ensemble_val_acc", "member_test_mean", "svc_acc", "base_mean", "augmentation_mean",
        "final_round_mean", "augmentation_diff_mean",
    ], floor=1 / VAL_IMAGES)


def notebook_cell(start: str, namespace: dict) -> dict:
    """Execute the committed notebook's cell that begins with ``start`` in ``namespace``; return it."""
    cells = json.loads(notebook_path(NAME).read_text(encoding="utf-8"))["cells"]
    exec(next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith(start)), namespace)
    return namespace


# Student's t at 97.5 % (a two-sided 95 % interval), from a printed table, for 4 to 9 degrees of freedom
T_TABLE = {4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@pytest.mark.parametrize("n", [5, 6, 8, 10])
def test_interval_rule_matches_a_table_of_t_values(n):
    cell = notebook_cell("import statistics\n\nfrom scipy import stats",
                         {"results": [], "seeds": [], "ExperimentConfig": ExperimentConfig})
    values = [0.01 * (i % 3) + 0.002 * i for i in range(n)]
    mean, low, high = cell["interval"](values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    assert mean == pytest.approx(sum(values) / n)
    assert (high - low) / 2 == pytest.approx(T_TABLE[n - 1] * std / math.sqrt(n), rel=2e-4)
    assert cell["interval"]([0.5]) == (0.5, -math.inf, math.inf)  # one seed: no interval, no verdict


def test_paired_verdicts_follow_the_interval(records):
    # a verdict only where the interval excludes 0: "helps" above, "hurts" below, else no detectable difference
    verdicts = dict(pair.split("=") for pair in records["verdicts"].split())
    assert set(verdicts) == set(COMPARISONS)
    for key in COMPARISONS:
        low, mean, high = (records[f"{key}_diff_{stat}"] for stat in ("low", "mean", "high"))
        assert low <= mean <= high, key
        assert verdicts[key] == ("helps" if low > 0 else "hurts" if high < 0 else "no"), key


def test_grid_claims(records):
    # "6 configurations x 8 seeds"; the final round adds 8 more
    assert SEEDS >= 5 and records["runs"] == 7 * SEEDS
    # augmentation at 10 epochs: the training images are far from learned, the base's nearly
    assert records["augmentation_train_acc"] < records["base_train_acc"] - 0.05
    assert records["base_train_acc"] > 0.95
    # the final round differs from "more epochs" in augmentation only
    assert records["final_config"] == replace(grid_configs(10)[3], augment=True).name
    # "the batch version is many times faster": a ratio measured side by side, with a generous band
    assert records["augment_speedup"] > 2


def test_demo_run_is_repeated_by_the_first_seed_of_the_base(perturbed):
    records, folder = perturbed
    runs_folder = folder / "runs"
    name = base_config(default_parameter(NAME, "EPOCHS")).run_name(perturbed_seed(NAME))
    run = EventAccumulator(str(runs_folder / "tensorboard" / name)).Reload()
    assert run.Scalars("hparam/val_acc")[-1].value == pytest.approx(records["demo_val_acc"], abs=1e-6)


def test_grid_claims_hold_in_direction(records):
    # "the bigger model and more epochs came out as helps or no detectable difference, never hurts"
    for key in ("bigger_model", "more_epochs"):
        assert records[f"{key}_diff_high"] > 0, key
    # "a lower learning rate, augmentation at 10 epochs and half the data ... never helps"
    for key in ("lower_lr", "augmentation", "half_the_data"):
        assert records[f"{key}_diff_low"] < 0, key


def test_final_round_claims(records):
    # augmentation at 30 epochs against more epochs: "its interval contained 0 or lay below it"
    assert records["augmentation_30_epochs_diff_low"] < 0


def test_ensemble_claims(records):
    # "averaging helps ... largest where single models are weak (augmentation at 10 epochs gains several
    # images) and small, about one to three images, where they are already good (more epochs, the bigger
    # model)"
    gains = {c: (records[f"{c}_ensemble"] - records[f"{c}_mean"]) * VAL_IMAGES for c in CONFIGS}
    assert sum(gain > 0 for gain in gains.values()) >= 5 and sum(gains.values()) > 7, gains
    assert gains["augmentation"] >= 4 and gains["augmentation"] > gains["more_epochs"] + 2, gains
    assert -1 < gains["more_epochs"] < 4 and -1 < gains["bigger_model"] < 4, gains
    # the chosen ensemble is the best on validation, and has all the seeds of its configuration
    assert records["members"] == SEEDS
    assert records["ensemble_val_acc"] == max(records[f"{c}_ensemble"] for c in CONFIGS)


def test_baseline_and_test_split_claims(records):
    # the SVC is picked on validation, "logistic regression is below the picked SVC on validation"
    assert 0.97 < records["svc_val_acc"] < 1
    assert images(records["svc_val_acc"], VAL_IMAGES) >= images(records["baseline_val_acc"], VAL_IMAGES) + 2
    # "on average over the seeds, a single network of the chosen configuration gets fewer test images right
    # than the SVC"; the interval is around that mean
    assert records["member_minus_svc_mean"] == pytest.approx(records["member_test_mean"] - records["svc_acc"])
    assert records["member_minus_svc_low"] < records["member_minus_svc_mean"] < records["member_minus_svc_high"]
    assert records["member_minus_svc_mean"] * TEST_IMAGES < -1
    # "single networks move by several test images from seed to seed"
    swing = images(records["member_test_max"], TEST_IMAGES) - images(records["member_test_min"], TEST_IMAGES)
    assert swing >= 3
    # "the SVC is ahead of logistic regression" and "already close to perfect"
    assert images(records["svc_acc"], TEST_IMAGES) >= images(records["baseline_test_acc"], TEST_IMAGES) + 2
    assert records["svc_acc"] > 0.97


def test_smoke_run_logs_every_run_and_picks_on_validation(tmp_path):
    records = execute(NAME, tmp_path, SMOKE=True, SEEDS=3)
    assert records["_headline"] == "best_test_acc"
    assert 0.75 <= records["baseline_test_acc"] <= 1.0  # logistic regression on 200 digits
    assert 0.75 <= records["svc_acc"] <= 1.0
    assert records["runs"] == 7 * 3  # 6 grid configurations and the final round, 3 seeds each
    configs = grid_configs(epochs=1)
    assert records["final_config"] == configs[-1].name

    runs = read_runs(tmp_path / "runs" / "tensorboard")
    expected = {config.run_name(seed) for config in configs for seed in (42, 43, 44)}
    demo = set(runs) - expected
    assert expected <= set(runs) and len(demo) == 1 and demo.pop().startswith("demo-")
    val_accs: dict[str, list[float]] = {}  # configuration -> the final validation accuracy of each seed
    for config in configs:
        for seed in (42, 43, 44):
            run = runs[config.run_name(seed)]
            assert run["steps"][0] == 1 and run["images"], config.run_name(seed)
            assert run["hparams"]["model"].string_value == "tinyvgg"
            assert run["hparams"]["seed"].number_value == seed
            val_accs.setdefault(config.name, []).append(run["val_acc"])
    # the recorded means are the logged runs' means; the paired difference is the mean of the seeds' differences
    means = {config: sum(accs) / len(accs) for config, accs in val_accs.items()}
    assert records["final_round_mean"] == pytest.approx(means[configs[-1].name], abs=1e-6)
    assert records["base_mean"] == pytest.approx(means[configs[0].name], abs=1e-6)
    assert records["augmentation_diff_mean"] == pytest.approx(means[configs[4].name] - means[configs[0].name],
                                                               abs=1e-6)
    assert records["ensemble_val_acc"] == max(records[f"{c}_ensemble"] for c in CONFIGS)
    drops = []  # more epochs of the same configuration lower the validation loss, for every seed
    for seed in (42, 43, 44):
        losses = runs[configs[3].run_name(seed)]["val_losses"]
        assert len(losses) == 3 and losses[2] < losses[0], losses
        drops.append(losses[0] - losses[2])
    assert sum(drops) / len(drops) > 0.03, drops


def test_augmentation_layer_rotates_and_shifts_each_image_only_in_training():
    RandomShiftRotate = notebook_cell("class RandomShiftRotate(", {"torch": torch, "nn": torch.nn,
                                                                    "F": torch.nn.functional})["RandomShiftRotate"]
    X = load_digits()[0][:8]  # (8, 1, 8, 8), values in [0, 1]
    layer = RandomShiftRotate(generator=torch.Generator().manual_seed(0))
    copies = layer(X[:1].expand(8, -1, -1, -1))
    assert copies.shape == (8, 1, 8, 8) and 0 <= copies.min() and copies.max() <= 1
    assert len({tuple(copy.flatten().tolist()) for copy in copies}) == 8  # each copy its own angle and shift
    again = RandomShiftRotate(generator=torch.Generator().manual_seed(0))(X[:1].expand(8, -1, -1, -1))
    assert torch.equal(again, copies)  # the same generator state, the same copies
    assert layer.eval()(X) is X  # "switches it off" in eval mode
    assert torch.allclose(RandomShiftRotate(degrees=0.0, pixels=0.0)(X), X, atol=1e-6)
    # "one pixel is 2/8 in grid units": the largest shift to one side moves the image by exactly one pixel
    shifted = RandomShiftRotate.warp(X, torch.zeros(8), torch.tensor([[1.0, 0.0]]).expand(8, 2))
    assert torch.allclose(shifted[..., :-1], X[..., 1:], atol=1e-6)  # each column reads the next one
    assert torch.all(shifted[..., -1] == 0)  # read outside the image: 0


def test_bad_seeds_stops_in_validation_before_writing(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, SEEDS=0)
    assert "ParameterError" in error and "SEEDS = 0" in error
    assert not (tmp_path / "runs").exists()
