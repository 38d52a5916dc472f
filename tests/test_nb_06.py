"""06_save_load through papermill: every claim of the prose on the committed run and on a learner's rerun with
another seed set (whose test accuracy must lie within the measured spread), a SMOKE run, and bad parameters
(one through papermill, the others through the notebook's own validation cell, without a kernel)."""

from __future__ import annotations

import pytest

from helpers.checkpoint import load_checkpoint
from helpers.params import ParameterError
from tests.nbrun import (
    assert_within_spread,
    execute,
    execute_expecting_error,
    run_validation_cell,
)

pytestmark = pytest.mark.notebook

NAME = "06_save_load"
TEST_IMAGE = 1 / 359  # one of the 359 digits test images: an accuracy's smallest step
SURPRISE = "!!! this line was printed by code inside the file, while it was loading"


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], ["test_acc"], floor=TEST_IMAGE)


def test_claims_about_training_and_loading(records):
    assert records["epochs"] == 6 and records["resume_after"] == 3
    assert 0.87 < records["test_acc"] < 0.97  # "about nine test images in ten are right"
    # "The training accuracy sits below the test accuracy" in every epoch (dropout, measured during the epoch)
    assert records["train_below_test"] is True and records["test_minus_train_min"] > 0
    assert records["predictions_equal"] is True  # the loaded weights predict bit for bit like the original


def test_claims_about_modes_and_keys(text):
    # a freshly built, loaded model is in training mode: dropout makes two calls differ, eval() makes them equal
    assert ("freshly built and loaded, in training mode: True\ntwo calls give the same outputs: False\n"
            "after eval(), two calls give the same outputs: True\n") in text
    assert "_IncompatibleKeys(missing_keys=['layers.7.weight', 'layers.7.bias'], unexpected_keys=[])" in text
    assert ("compiled model: ['_orig_mod.layers.1.weight', '_orig_mod.layers.1.bias']" in text
            or "torch.compile is not available here" in text)


def test_claims_about_unsafe_files(records, text):
    assert records["whole_model_refused"] is True and records["surprise_refused"] is True
    assert text.count(SURPRISE) == 1  # only the weights_only=False load ran the file's code
    assert "refused: WeightsUnpickler error: Unsupported global: GLOBAL helpers.models.MLP was not an allowed " \
           "global by default.\n" in text  # a whole sentence, not a message cut mid-word


def test_claims_about_atomic_saving_and_resuming(records):
    assert records["old_file_intact"] is True and records["temporary_left"] is False
    assert records["first_epochs_match"] is True  # the interrupted run starts as the reference run
    assert records["shortcut_identical"] is False  # without the generator states the resume differs
    assert records["checkpoint_changed"] is True  # on the CPU the shortcut's optimizer trained the dict's tensors
    assert records["resume_identical"] is True  # inside one run: exactly the uninterrupted run's weights


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


def test_bad_resume_after_stops_the_notebook_in_validation_before_writing(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, RESUME_AFTER=6)
    assert error.startswith("ParameterError") and "RESUME_AFTER = 6 is not allowed: it must be smaller than " \
                                                  "EPOCHS = 6" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("parameters, message", [
    ({"RESUME_AFTER": 0}, "RESUME_AFTER = 0 is not allowed: must be a whole number greater than 0"),
    ({"RESUME_AFTER": 8, "EPOCHS": 8}, "RESUME_AFTER = 8 is not allowed: it must be smaller than EPOCHS = 8"),
    ({"EPOCHS": 2.5}, "EPOCHS = 2.5 is not allowed"),
], ids=["resume_after_0", "resume_after_epochs", "epochs"])
def test_validation_cell_refuses_bad_values(tmp_path, parameters, message):
    with pytest.raises(ParameterError) as error:
        run_validation_cell(NAME, RUNS_DIR=str(tmp_path / "runs"), **parameters)
    assert message in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_cannot_be_written_says_what_to_do(tmp_path):
    (tmp_path / "a_file").write_text("a file, not a folder")
    with pytest.raises(PermissionError) as error:
        run_validation_cell(NAME, whole=True, RUNS_DIR=str(tmp_path / "a_file" / "runs"))
    assert "cannot write to" in str(error.value) and "set RUNS_DIR" in str(error.value)
