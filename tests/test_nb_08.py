"""Papermill runs of notebooks/08_custom_datasets.ipynb: every claim of the prose on the committed run and on
a learner's rerun with another seed set (whose numbers must lie within the measured spread), a SMOKE run, a
run on a folder of one's own images (IMAGE_DIR), and broken folders and bad parameters refused before
anything is written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helpers.shapes import draw_shape
from helpers.vision import ImageFolderError, check_image_folder
from tests.nbrun import (
    assert_within_spread,
    execute,
    execute_expecting_error,
    run_validation_cell,
    spread,
)

NAME = "08_custom_datasets"
TEST_IMAGES = 225  # a quarter of the 300 shapes per class, three classes
TEST_IMAGE = 1 / TEST_IMAGES  # an accuracy's smallest step
pytestmark = pytest.mark.notebook


def test_rerun_with_other_seeds_lies_within_the_measured_spread(perturbed):
    assert_within_spread(NAME, perturbed[0], [
        "test_acc", "tiny_acc", "tiny_train_loss", "few_acc_plain", "few_acc_aug", "few_test_loss_min",
    ], floor=TEST_IMAGE)
    assert (perturbed[0]["n_train"], perturbed[0]["n_test"], perturbed[0]["n_classes"]) == (675, 225, 3)


def test_normalisation_claims(records):
    # section 2: "the average pixel is about 0.68"; after Normalize "from about -2.7 ... to about 1.3"
    assert records["pixel_mean"] == pytest.approx(0.68, abs=0.01)
    assert records["normalized_min"] == pytest.approx(-2.7, abs=0.1)
    assert records["normalized_max"] == pytest.approx(1.3, abs=0.1)


def test_augmentation_on_all_images_claims(records):
    # section 5: "usually between 90 and 100 %" test accuracy, "one of our runs with other seeds reached only 89 %";
    # "the plain model's test loss ends close to its training loss"
    assert records["test_acc"] > 0.85 and records["test_acc_aug"] > 0.85
    assert abs(records["plain_test_loss"] - records["plain_train_loss"]) < 0.15


def test_underfitting_claims(records):
    # "stopped after 3 epochs ... far below the final one"; "at the end both losses are low and close together"
    assert records["plain_acc_epoch3"] < records["test_acc"] - 0.15
    assert records["plain_test_loss"] < 0.35 and records["plain_train_loss"] < 0.35
    # the tiny model: "fall for a few epochs, then stay flat, high and close together", "moves by less than
    # 0.01" in the last five epochs, "the test accuracy stays between about 40 and 55 %, far below TinyVGG's"
    assert records["tiny_first_train_loss"] > records["tiny_train_loss"] + 0.05  # it learned something ...
    assert records["tiny_last5_range"] < 0.01  # ... then stopped: a plateau
    assert 0.8 < records["tiny_train_loss"] < 1.05  # high: not the ln 3 = 1.0986 of a dead network either
    assert abs(records["tiny_test_loss"] - records["tiny_train_loss"]) < 0.15
    assert 0.36 < records["tiny_acc"] < 0.6 and records["tiny_acc"] < records["test_acc"] - 0.3


def test_overfitting_claims(records):
    # "the training loss keeps falling while the test loss ... turns upwards and ends far above it",
    # "its test accuracy stays far below section 5's"
    assert records["few_test_loss"] > records["few_test_loss_min"] + 0.3
    assert records["few_test_loss"] > 2 * records["few_train_loss"]
    assert records["few_acc"] < records["test_acc"] - 0.3


def test_augmentation_against_overfitting_claims(records):
    # "training and test losses stay close together", "its test loss ends far below the plain run's"
    assert abs(records["few_aug_train_loss"] - records["few_aug_test_loss"]) < 0.2
    assert records["few_aug_test_loss"] < records["few_test_loss"] - 0.5
    # the augmented model's training loss stays high; "both stay far below section 5's accuracy"
    assert records["few_aug_train_loss"] > 0.5
    assert max(records["few_acc_aug"], records["few_acc_plain"]) < records["test_acc"] - 0.3
    assert 0 <= records["few_aug_wins"] <= 3


def test_seed_sets_disagree_on_whether_augmentation_wins_with_30_images():
    # "In our runs with other values of SEED that count went both ways, from all three seeds to none"
    wins = spread(NAME)["few_aug_wins"]
    assert max(wins) == 3 and min(wins) == 0


def test_prediction_claims(records):
    # section 7: "The cell prints each file's prediction; all three come out right here"
    assert records["custom_correct"] == 3
    assert (records["custom_file"], records["custom_prediction"]) == ("triangle_200x150_rgba.png", "triangle")


def test_smoke_run_records_values_and_writes_where_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    values = execute(NAME, tmp_path, SMOKE=True, DEVICE="cpu")  # the GPU path is run by nbval (DEVICE="auto")
    assert values["_headline"] == "test_acc"
    assert (values["n_classes"], values["n_train"], values["n_test"], values["epochs"]) == (3, 27, 9, 2)
    # 2 epochs on 27 images do not learn the shapes yet (the default run checks learning)
    shapes = tmp_path / "data" / "shapes_32px_12each"
    assert len(list((shapes / "train").glob("*/*.png"))) == 27
    assert len(list((shapes / "test").glob("*/*.png"))) == 9
    custom = tmp_path / "runs" / "custom_images"
    assert sorted(p.name for p in custom.iterdir()) == [
        "circle_grayscale.png", "square_300px.jpg", "triangle_200x150_rgba.png"]
    bad = tmp_path / "runs" / "bad_folders"
    assert sorted(p.name for p in bad.iterdir()) == ["broken", "empty_class", "loose", "one_class"]
    assert (bad / "broken" / "square" / "photo.png").read_bytes() == b"these bytes are not an image"


def own_images(root: Path, kinds: tuple[str, ...] = ("circle", "square"), count: int = 8) -> Path:
    """A learner's folder: one folder per class, PNG and JPEG files of several sizes and colour modes."""
    for kind in kinds:
        (root / kind).mkdir(parents=True)
        rng = random.Random(kind)
        for i in range(count):
            image = draw_shape(kind, 24 + 11 * i, rng).resize((24 + 11 * i, 30 + 7 * i))
            if i % 2:
                image.save(root / kind / f"photo_{i}.jpg", quality=90)
            else:
                image.convert("RGBA" if i % 4 else "L").save(root / kind / f"drawing_{i}.png")
    (root / kinds[0] / "notes.txt").write_text("a file without an image ending is skipped")
    return root


def validation_cell(tmp_path: Path) -> dict:
    """The executed validation cell (the first that calls check_params) of the notebook papermill wrote."""
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text())["cells"]
    return next(cell for cell in cells if "check_params(" in "".join(cell["source"]))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_own_folder_of_class_folders_trains_end_to_end_and_predicts_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mine = own_images(tmp_path / "my images")
    before = snapshot(mine)
    values = execute(NAME, tmp_path, IMAGE_DIR=str(mine), SMOKE=True, DEVICE="cpu")
    assert snapshot(mine) == before  # only read
    # 8 images per class: a seeded quarter (2) of each class is copied to test/, the rest to train/
    split = tmp_path / "data" / "my images_split_seed42"
    assert (values["n_classes"], values["n_train"], values["n_test"]) == (2, 12, 4)
    test_files = {kind: sorted(p.name for p in (split / "test" / kind).iterdir()) for kind in ("circle", "square")}
    assert [len(names) for names in test_files.values()] == [2, 2]
    assert not (split / "train" / "circle" / "notes.txt").exists()
    # the notebook predicted on a file of the folder: the first test image of the first class
    assert values["custom_file"] == test_files["circle"][0]
    assert values["custom_prediction"] in ("circle", "square") and 0 <= values["custom_correct"] <= 2
    assert not (tmp_path / "data" / "shapes_32px_12each").exists()  # no shapes were made
    printed = "".join("".join(output.get("text", "")) for output in validation_cell(tmp_path)["outputs"])
    assert ("IMAGE_DIR: 2 classes, 16 images (circle 8, square 8), one folder per class; 1 file(s) without an "
            "image ending skipped, such as notes.txt") in printed


def test_own_folder_already_split_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    own_images(tmp_path / "mine" / "train", kinds=("circle", "square", "triangle"), count=4)
    own_images(tmp_path / "mine" / "test", kinds=("circle", "square", "triangle"), count=2)
    values = execute(NAME, tmp_path, IMAGE_DIR=str(tmp_path / "mine"), SMOKE=True, DEVICE="cpu", EPOCHS=1)
    assert (values["n_classes"], values["n_train"], values["n_test"]) == (3, 12, 6)
    assert values["custom_file"] == "drawing_0.png"
    assert not (tmp_path / "data").exists()  # nothing to generate or copy


def broken_one_class(root: Path) -> str:
    own_images(root, kinds=("circle",))
    return "only one class folder, 'circle': a classifier needs at least two classes"


def broken_empty_class(root: Path) -> str:
    own_images(root)
    (root / "triangle").mkdir()
    return f"class folder {root / 'triangle'} holds no image files"


def broken_unreadable_file(root: Path) -> str:
    own_images(root)
    (root / "square" / "photo_9.jpg").write_bytes(b"not a JPEG")
    return f"cannot read {root / 'square' / 'photo_9.jpg'} as an image (not a format PIL recognises)"


def broken_missing(root: Path) -> str:
    return f"{root} is not a folder: check the path"


def test_broken_own_folder_stops_in_the_validation_cell_before_writing(tmp_path):
    """One kernel: the validation cell stops on a broken IMAGE_DIR, and nothing is written."""
    expected = broken_unreadable_file(tmp_path / "mine")
    error = execute_expecting_error(NAME, tmp_path, IMAGE_DIR=str(tmp_path / "mine"))
    assert error.startswith(f"ImageFolderError: {tmp_path / 'mine'}")
    assert expected in error
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text())["cells"]
    failed = [cell for cell in cells if any(o["output_type"] == "error" for o in cell.get("outputs", []))]
    assert failed == [validation_cell(tmp_path)]
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("make", [broken_one_class, broken_empty_class, broken_unreadable_file, broken_missing])
def test_broken_own_folder_is_refused_by_the_validation_cell_checks(tmp_path, make):
    expected = make(tmp_path / "mine")
    before = snapshot(tmp_path)
    with pytest.raises(ImageFolderError) as error:
        run_validation_cell(NAME, IMAGE_DIR=str(tmp_path / "mine"))
    assert str(error.value).startswith(str(tmp_path / "mine")) and expected in str(error.value)
    assert snapshot(tmp_path) == before
    with pytest.raises(ImageFolderError):  # the same helper, called directly
        check_image_folder(tmp_path / "mine")


def test_default_parameters_pass_the_validation_cell_checks():
    run_validation_cell(NAME)  # no exception


@pytest.mark.parametrize("name, value", [("IMAGE_SIZE", 4), ("IMAGES_PER_CLASS", 3), ("IMAGE_DIR", 5)])
def test_bad_parameter_is_refused_by_the_validation_cell_checks(name, value):
    from helpers.params import ParameterError

    with pytest.raises(ParameterError) as error:
        run_validation_cell(NAME, **{name: value})
    assert f"{name} = {value}" in str(error.value)


def test_bad_parameter_stops_the_notebook_before_writing(tmp_path):
    """One kernel for the bad values: papermill reports the ParameterError and nothing is written."""
    error = execute_expecting_error(NAME, tmp_path, IMAGE_SIZE=4)
    assert error.startswith("ParameterError") and "IMAGE_SIZE = 4" in error
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()
