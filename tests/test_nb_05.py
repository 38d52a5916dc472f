"""Papermill runs of notebooks/05_experiment.ipynb (SMOKE) and a bad parameter."""

from __future__ import annotations

import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook

RUN_NAME = re.compile(r"(demo-)?tinyvgg-h\d+-lr[\d.e-]+-e\d+(-aug[01]-data\d+)?-seed\d+")


def test_smoke_run_logs_every_run_and_records_both_test_accuracies(tmp_path):
    records = execute("05_experiment", tmp_path, SMOKE=True)
    assert records["_headline"] == "best_test_acc"
    assert 0.0 <= records["best_test_acc"] <= 1.0
    assert 0.75 <= records["baseline_test_acc"] <= 1.0  # logistic regression on 200 digits
    assert 0.0 <= records["best_val_acc"] <= 1.0
    assert RUN_NAME.fullmatch(records["best_config"] + "-seed42")
    assert records["runs"] in (14, 16)  # 7 configurations x 2 seeds, plus the combined one if new

    run_folders = sorted((tmp_path / "runs" / "tensorboard").iterdir())
    assert len(run_folders) == records["runs"] + 1  # the grid plus the hand-written demo run
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
    assert events.Tags()["images"], "each run logs a batch of images"


def test_bad_seeds_stops_in_validation_before_writing(tmp_path):
    error = execute_expecting_error("05_experiment", tmp_path, SMOKE=True, SEEDS=0)
    assert "ParameterError" in error and "SEEDS = 0" in error
    assert not (tmp_path / "runs").exists()
