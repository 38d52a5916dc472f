"""Papermill runs of notebooks/05_experiment.ipynb (SMOKE) and a bad parameter."""

from __future__ import annotations

import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook

RUN_NAME = re.compile(r"(demo-)?tinyvgg-h\d+-lr[\d.e-]+-e\d+(-aug[01]-data\d+)?-seed\d+")


def test_smoke_run_logs_every_run_and_picks_the_best_configuration(tmp_path):
    records = execute("05_experiment", tmp_path, SMOKE=True)
    assert records["_headline"] == "best_test_acc"
    assert 0.75 <= records["baseline_test_acc"] <= 1.0  # logistic regression on 200 digits
    assert RUN_NAME.fullmatch(records["best_config"] + "-seed42")
    assert records["runs"] in (14, 16)  # 7 configurations x 2 seeds, plus the combined one if new

    run_folders = sorted((tmp_path / "runs" / "tensorboard").iterdir())
    assert len(run_folders) == records["runs"] + 1  # the grid plus the hand-written demo run
    final_val_acc: dict[str, list[float]] = {}  # configuration -> the final validation accuracy of each seed
    val_losses: dict[str, list[float]] = {}
    for folder in run_folders:
        assert RUN_NAME.fullmatch(folder.name), folder.name
        events = EventAccumulator(str(folder)).Reload()
        scalars = events.Tags()["scalars"]
        assert {"loss/train", "accuracy/val"} <= set(scalars), folder.name
        assert [e.step for e in events.Scalars("accuracy/val")][0] == 1, folder.name
        assert any(tag.startswith("hparam/") for tag in scalars), folder.name
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        assert hparams["model"].string_value == "tinyvgg", folder.name
        assert hparams["seed"].number_value == int(folder.name.rsplit("seed", 1)[1]), folder.name
        if not folder.name.startswith("demo-"):
            config = folder.name.rsplit("-seed", 1)[0]
            final_val_acc.setdefault(config, []).append(events.Scalars("hparam/val_acc")[-1].value)
            val_losses[folder.name] = [e.value for e in events.Scalars("loss/val")]
    assert events.Tags()["images"], "each run logs a batch of images"

    # The recorded best is the configuration with the highest mean over the seeds, as logged.
    mean_val_acc = {config: sum(accs) / len(accs) for config, accs in final_val_acc.items()}
    assert all(len(accs) == 2 for accs in final_val_acc.values())  # SEEDS = 2
    assert records["best_config"] == max(mean_val_acc, key=mean_val_acc.get)
    assert records["best_val_acc"] == pytest.approx(mean_val_acc[records["best_config"]], abs=1e-6)
    # SMOKE trains the base for 1 epoch on 200 digits: barely started. The best change (3 epochs or a
    # bigger model) is clearly ahead of it and of guessing (0.1), on validation and on the test split.
    assert records["best_val_acc"] > mean_val_acc["tinyvgg-h16-lr0.003-e1-aug0-data100"] + 0.05
    assert records["best_val_acc"] > 0.18 and records["best_test_acc"] > 0.18
    for seed in (42, 43):  # more epochs of the same configuration lower the validation loss
        losses = val_losses[f"tinyvgg-h16-lr0.003-e3-aug0-data100-seed{seed}"]
        assert len(losses) == 3 and losses[2] < losses[0] - 0.03, losses


def test_bad_seeds_stops_in_validation_before_writing(tmp_path):
    error = execute_expecting_error("05_experiment", tmp_path, SMOKE=True, SEEDS=0)
    assert "ParameterError" in error and "SEEDS = 0" in error
    assert not (tmp_path / "runs").exists()
