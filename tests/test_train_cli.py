"""helpers.train, the command-line training script of 10_going_further."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import helpers.device
from helpers.models import build_model
from helpers.train import main


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers.train", *args], capture_output=True, text=True,
                          timeout=300)


def test_help_lists_every_option_and_exits_0():
    result = run_script("--help")
    assert result.returncode == 0 and result.stderr == ""
    for option in ("--dataset", "--model", "--hidden-units", "--epochs", "--batch-size", "--lr", "--seed",
                   "--device", "--out"):
        assert option in result.stdout


def test_tiny_run_prints_one_line_per_epoch_and_writes_history_and_weights(tmp_path):
    out = tmp_path / "cli"
    result = run_script("--model", "mlp", "--hidden-units", "32", "--epochs", "2", "--batch-size", "128",
                        "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert [line.split("|")[0].split() for line in epoch_lines] == [["epoch", "1"], ["epoch", "2"]]
    assert {p.name for p in out.iterdir()} == {"history.json", "model.pt"}
    saved = json.loads((out / "history.json").read_text())
    assert saved["config"]["epochs"] == 2 and saved["config"]["model"] == "mlp"
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert 0.3 <= saved["history"][-1]["test_acc"] <= 1  # 2 epochs of an MLP: well above 10 % guessing
    model = build_model("mlp", hidden_units=32)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))  # a plain state_dict


def test_bad_value_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = run_script("--lr", "fast", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "python -m helpers.train: error: --lr: LEARNING_RATE = 'fast' is not allowed: must be a number "
        "greater than 0, such as 0.01 (a number, not text)."
    ]
    assert not (tmp_path / "out").exists()


BAD_OPTIONS = [
    (["--epochs", "0"], "--epochs: EPOCHS = 0 is not allowed: must be a whole number greater than 0"),
    (["--epochs", "2.5"], "--epochs: EPOCHS = 2.5 is not allowed"),
    (["--batch-size", "-8"], "--batch-size: BATCH_SIZE = -8 is not allowed"),
    (["--lr", "-0.1"], "--lr: LEARNING_RATE = -0.1 is not allowed"),
    (["--seed", "x"], "--seed: SEED = 'x' is not allowed: must be a whole number of 0 or more"),
    (["--model", "resnet"], "--model: MODEL = 'resnet' is not allowed: choose one of 'tinyvgg', 'mlp'."),
    (["--dataset", "cifar100"], "--dataset: DATASET = 'cifar100' is not allowed: choose one of 'digits'."),
    (["--device", "tpu"], "DEVICE = 'tpu' is not allowed: give one of 'auto', 'cpu', 'cuda', 'mps'"),
    (["--device", "cuda"], "DEVICE = 'cuda' is not available on this machine: available here are 'cpu'."),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_bad_value_is_refused_before_writing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, even on a GPU one
    monkeypatch.setattr(helpers.device, "_mps_available", lambda: False)
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and message in captured.err
    assert not (tmp_path / "out").exists()


def test_out_that_cannot_be_written_is_refused_with_what_to_do(tmp_path, capsys):
    (tmp_path / "a_file").write_text("a file, not a folder")
    assert main(["--out", str(tmp_path / "a_file" / "runs")]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "cannot write to" in error and "set --out to a folder" in error
    assert "-p --out" not in error
