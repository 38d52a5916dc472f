"""Papermill runs of notebooks/06_save_load.ipynb: a learner's default run (the committed numbers, and every
claim of the prose), a SMOKE run and bad parameters."""

from __future__ import annotations

import json

import pytest

from helpers.checkpoint import load_checkpoint
from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner

pytestmark = pytest.mark.notebook

NAME = "06_save_load"
SURPRISE = "!!! this line was printed by code inside the file, while it was loading"


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    """One run at the defaults and the machine's default thread count, on the CPU the committed run used."""
    tmp_path = tmp_path_factory.mktemp("nb06")
    return execute_like_a_learner(NAME, tmp_path, DEVICE="cpu"), tmp_path


def printed(tmp_path) -> str:
    """Everything the executed notebook printed."""
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text(encoding="utf-8"))["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))


def test_default_run_gives_the_committed_numbers(learner_run):
    records, _ = learner_run
    assert_reproduces_committed(NAME, records, ["test_acc"])


def test_claims_about_training_and_loading(learner_run):
    records, _ = learner_run
    assert records["epochs"] == 6 and records["resume_after"] == 3
    assert records["test_acc"] > 0.90  # "after six epochs the test accuracy is above 90%"
    assert records["train_below_test"] is True  # dropout: the training accuracy sits below the test accuracy
    assert records["predictions_equal"] is True  # the loaded weights predict bit for bit like the original


def test_claims_about_unsafe_files(learner_run):
    records, tmp_path = learner_run
    assert records["whole_model_refused"] is True and records["surprise_refused"] is True
    text = printed(tmp_path)
    assert text.count(SURPRISE) == 1  # only the weights_only=False load ran the file's code
    assert "refused: WeightsUnpickler error: Unsupported global: GLOBAL helpers.models.MLP was not an allowed " \
           "global by default.\n" in text  # a whole sentence, not a message cut mid-word


def test_claims_about_atomic_saving_and_resuming(learner_run):
    records, _ = learner_run
    assert records["old_file_intact"] is True and records["temporary_left"] is False
    assert records["first_epochs_match"] is True  # the interrupted run starts as the reference run
    assert records["shortcut_identical"] is False  # without the generator states the resume differs
    assert records["checkpoint_changed"] is True  # on the CPU the shortcut's optimizer trained the dict's tensors
    assert records["resume_identical"] is True


def test_smoke_run_resumes_identically_and_leaves_good_checkpoints(tmp_path):
    values = execute(NAME, tmp_path, SMOKE=True)
    assert values["_headline"] == "test_acc"
    assert 0.4 <= values["test_acc"] <= 1.0
    assert values["resume_identical"] is True
    assert values["predictions_equal"] is True
    assert (values["epochs"], values["resume_after"]) == (3, 2)
    runs = tmp_path / "runs"
    checkpoint = load_checkpoint(runs / "checkpoint.pt")
    assert checkpoint["epoch"] == 3 and [m["epoch"] for m in checkpoint["history"]] == [1, 2, 3]
    assert not [p.name for p in runs.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("resume_after, message", [
    (6, "RESUME_AFTER = 6 is not allowed: it must be smaller than EPOCHS = 6"),
    (0, "RESUME_AFTER = 0 is not allowed: must be a whole number greater than 0"),
])
def test_bad_resume_after_stops_in_validation_before_writing(tmp_path, resume_after, message):
    error = execute_expecting_error(NAME, tmp_path, RESUME_AFTER=resume_after)
    assert error.startswith("ParameterError") and message in error
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_cannot_be_written_says_what_to_do(tmp_path):
    (tmp_path / "a_file").write_text("a file, not a folder")
    error = execute_expecting_error(NAME, tmp_path, RUNS_DIR=str(tmp_path / "a_file" / "runs"))
    assert error.startswith("PermissionError") and "cannot write to" in error and "set RUNS_DIR" in error
