"""Unit tests for helpers.tracking: run names, TensorBoard logging read back, results tables."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from helpers.engine import fit
from helpers.tracking import (
    ExperimentConfig,
    TensorBoardHook,
    format_results_table,
    log_hparams,
    mean_std,
    summarize_runs,
    tensorboard_dir,
)

BASE = ExperimentConfig("tinyvgg", 16, 0.003, 10, False, 1.0)


def read_run(path):
    """Scalars by tag and the hparams plugin data of one run folder, via TensorBoard's reader."""
    events = EventAccumulator(str(path)).Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    hparams = {}
    for name, value in start.session_start_info.hparams.items():
        hparams[name] = value.string_value if value.HasField("string_value") else value.number_value
    metric_tags = [info.name.tag for info in experiment.experiment.metric_infos]
    return scalars, hparams, metric_tags


def test_run_names_spell_out_every_setting():
    assert BASE.name == "tinyvgg-h16-lr0.003-e10-aug0-data100"
    assert BASE.run_name(0) == "tinyvgg-h16-lr0.003-e10-aug0-data100-seed0"
    other = ExperimentConfig("mlp", 128, 0.0001, 30, True, 0.5)
    assert other.run_name(43) == "mlp-h128-lr0.0001-e30-aug1-data50-seed43"


def test_configs_that_differ_in_one_setting_have_different_names():
    from dataclasses import replace

    variants = [replace(BASE, hidden_units=8), replace(BASE, learning_rate=0.001), replace(BASE, epochs=30),
                replace(BASE, augment=True), replace(BASE, data_fraction=0.5), replace(BASE, model="mlp")]
    names = {BASE.name, *(v.name for v in variants)}
    assert len(names) == 7


def test_hparams_rebuild_the_config_and_are_values_tensorboard_shows():
    other = ExperimentConfig("mlp", 128, 0.0001, 30, True, 0.5)
    for config in (BASE, other):
        assert ExperimentConfig(**config.hparams()) == config
        assert all(type(value) in (bool, int, float, str) for value in config.hparams().values())
    assert BASE.hparams() != other.hparams()


@pytest.mark.parametrize(
    "field, value",
    [("model", "tiny vgg"), ("model", "a/b"), ("hidden_units", 0), ("epochs", 2.5), ("learning_rate", 0.0),
     ("learning_rate", math.inf), ("data_fraction", 0.0), ("data_fraction", 1.5)],
)
def test_bad_settings_are_refused_naming_the_field(field, value):
    settings = BASE.hparams() | {field: value}
    with pytest.raises(ValueError, match=field):
        ExperimentConfig(**settings)


def test_configs_that_differ_only_in_far_digits_have_different_names():
    from dataclasses import replace

    assert replace(BASE, data_fraction=0.504).name != replace(BASE, data_fraction=0.496).name
    assert replace(BASE, data_fraction=0.504).name.endswith("-data50.4")
    assert replace(BASE, learning_rate=0.0030000001).name == "tinyvgg-h16-lr0.0030000001-e10-aug0-data100"
    fractions = [0.5, 0.504, 0.496, 0.29, 0.1 + 0.2, 0.3, 1e-7, 1.0]
    rates = [0.003, 0.0030000001, 0.003 + 1e-18, 1e-4, 3e-4, 0.1 + 0.2, 0.3, 1.0]
    assert len({replace(BASE, data_fraction=f).name for f in fractions}) == len(set(fractions))
    assert len({replace(BASE, learning_rate=r).name for r in rates}) == len(set(rates))


def test_tensorboard_dir_is_per_run_and_a_rerun_replaces_its_event_files(tmp_path):
    path = tensorboard_dir(tmp_path, "run-a")
    assert path == tmp_path / "tensorboard" / "run-a" and path.is_dir()
    with SummaryWriter(path) as writer:
        writer.add_scalar("loss/train", 1.0, 1)
    (tmp_path / "tensorboard" / "run-b").mkdir()
    again = tensorboard_dir(tmp_path, "run-a")
    assert [p.name for p in again.iterdir()] == [".tensorboard_dir.json"], "no event file of the earlier run"
    assert (tmp_path / "tensorboard" / "run-b").is_dir(), "other runs must be left alone"


@pytest.mark.parametrize("made_by", ["tensorboard_dir", "you"])
def test_tensorboard_dir_never_deletes_files_it_did_not_write(tmp_path, made_by):
    path = tmp_path / "tensorboard" / "myrun"
    if made_by == "you":
        path.mkdir(parents=True)
    else:
        tensorboard_dir(tmp_path, "myrun")
    (path / "notes.txt").write_text("my notes")
    torch.save({"w": torch.ones(1)}, path / "best.pt")
    with pytest.raises(FileExistsError, match=r"myrun (holds best\.pt and 1 more file\(s\) that tensorboard_dir did"
                                              r" not write|already exists and was not made by tensorboard_dir)"):
        tensorboard_dir(tmp_path, "myrun")
    assert (path / "notes.txt").read_text() == "my notes"
    assert torch.equal(torch.load(path / "best.pt")["w"], torch.ones(1))


def test_a_run_folder_from_before_the_marker_is_replaced_when_it_holds_only_event_files(tmp_path):
    path = tmp_path / "tensorboard" / "old-run"
    with SummaryWriter(path) as writer:  # as the course made run folders before the marker
        writer.add_scalar("loss/train", 1.0, 1)
    assert [p.name for p in tensorboard_dir(tmp_path, "old-run").iterdir()] == [".tensorboard_dir.json"]


def test_a_second_config_never_wipes_the_logs_of_the_first(tmp_path):
    from dataclasses import replace

    first, second = replace(BASE, data_fraction=0.504), replace(BASE, data_fraction=0.496)
    with SummaryWriter(tensorboard_dir(tmp_path, first.run_name(0))) as writer:
        writer.add_scalar("loss/train", 1.0, 1)
    tensorboard_dir(tmp_path, second.run_name(0))
    assert len(list((tmp_path / "tensorboard" / first.run_name(0)).glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape"])
def test_tensorboard_dir_refuses_names_that_are_not_one_folder(tmp_path, name):
    with pytest.raises(ValueError, match="single folder name"):
        tensorboard_dir(tmp_path, name)


def tiny_fit(writer, epochs=3):
    torch.manual_seed(0)
    X, y = torch.randn(40, 4), torch.arange(40) % 3
    batches = [(X[:24], y[:24]), (X[24:], y[24:])]
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return fit(model, batches, batches[1:], nn.CrossEntropyLoss(), optimizer, epochs, torch.device("cpu"),
               on_epoch_end=TensorBoardHook(writer), progress="none", eval_prefix="val")


def test_a_tiny_run_reads_back_with_tensorboards_reader(tmp_path):
    config = ExperimentConfig("linear", 4, 0.1, 3, False, 1.0)
    path = tensorboard_dir(tmp_path, config.run_name(7))
    with SummaryWriter(path) as writer:
        history = tiny_fit(writer, epochs=3)
        final = {"val_acc": history[-1]["val_acc"], "val_loss": history[-1]["val_loss"]}
        log_hparams(writer, config.hparams() | {"seed": 7}, final, step=3)
    assert [p.parent for p in path.rglob("events.out.tfevents.*")] == [path, path], "no sub-folders"

    scalars, hparams, metric_tags = read_run(path)
    assert set(scalars) == {"loss/train", "loss/val", "accuracy/train", "accuracy/val",
                            "time/seconds_per_epoch", "hparam/val_acc", "hparam/val_loss"}
    for tag, key in [("loss/train", "train_loss"), ("accuracy/val", "val_acc"), ("loss/val", "val_loss")]:
        assert [step for step, _ in scalars[tag]] == [1, 2, 3]
        assert [v for _, v in scalars[tag]] == pytest.approx([h[key] for h in history], rel=1e-6)
    assert scalars["hparam/val_acc"] == [(3, pytest.approx(final["val_acc"], rel=1e-6))]
    assert hparams == {"model": "linear", "hidden_units": 4, "learning_rate": pytest.approx(0.1),
                       "epochs": 3, "augment": 0, "data_fraction": 1, "seed": 7}
    assert sorted(metric_tags) == ["hparam/val_acc", "hparam/val_loss"]


def test_hook_never_stops_training_and_files_unknown_keys_under_other(tmp_path):
    with SummaryWriter(tmp_path) as writer:
        hook = TensorBoardHook(writer)
        assert hook.writer is writer
        assert hook(1, {"epoch": 1, "train_loss": 0.5, "custom": 2.0}) is None
        assert len(tiny_fit(writer, epochs=4)) == 4
    tags = EventAccumulator(str(tmp_path)).Reload().Tags()["scalars"]
    assert set(tags) == {"other/custom", "loss/train", "loss/val", "accuracy/train", "accuracy/val",
                         "time/seconds_per_epoch"}, "the epoch number is the step, not a scalar"


def test_log_hparams_refuses_values_tensorboard_cannot_show(tmp_path):
    with SummaryWriter(tmp_path) as writer, pytest.raises(TypeError, match="'layers'"):
        log_hparams(writer, {"layers": [1, 2]}, {"val_acc": 0.5})


def test_mean_std_uses_the_sample_standard_deviation():
    mean, std = mean_std([0.90, 0.94, 0.95])
    assert mean == pytest.approx(0.93)
    assert std == pytest.approx(statistics.stdev([0.90, 0.94, 0.95]))
    assert std == pytest.approx(torch.tensor([0.90, 0.94, 0.95], dtype=torch.float64).std().item())
    assert mean_std([0.8]) == (0.8, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


RESULTS = [
    {"config": "b", "seed": 0, "val_acc": 0.90, "seconds": 1.0},
    {"config": "a", "seed": 0, "val_acc": 0.96, "seconds": 3.0},
    {"config": "b", "seed": 1, "val_acc": 0.94, "seconds": 2.0},
    {"config": "a", "seed": 1, "val_acc": 0.98, "seconds": 5.0},
]


def test_summarize_runs_groups_by_config_in_first_seen_order():
    rows = summarize_runs(RESULTS)
    assert [row["config"] for row in rows] == ["b", "a"]
    assert rows[0]["runs"] == 2 and rows[0]["mean"] == pytest.approx(0.92)
    assert rows[0]["std"] == pytest.approx(statistics.stdev([0.90, 0.94]))
    assert rows[1]["seconds"] == pytest.approx(4.0)


def test_results_table_shows_mean_std_best_and_difference_from_reference():
    text = format_results_table(summarize_runs(RESULTS), best="a", reference="b")
    assert text == (
        "   configuration  runs  val_acc mean ± std  s/run  vs reference\n"
        "-  -------------  ----  ------------------  -----  ------------\n"
        "   b                 2      92.00% ± 2.83%    1.5      +0.0 pts\n"
        "*  a                 2      97.00% ± 1.41%    4.0      +5.0 pts"
    )
    with pytest.raises(ValueError, match="reference 'c'"):
        format_results_table(summarize_runs(RESULTS), reference="c")


def test_results_table_without_reference_or_best_has_no_extra_column():
    lines = format_results_table(summarize_runs(RESULTS), metric="val_acc").splitlines()
    assert [line.split() for line in lines] == [
        ["configuration", "runs", "val_acc", "mean", "±", "std", "s/run"],
        ["-------------", "----", "------------------", "-----"],
        ["b", "2", "92.00%", "±", "2.83%", "1.5"],
        ["a", "2", "97.00%", "±", "1.41%", "4.0"],
    ]
    assert "*" not in "".join(lines)
