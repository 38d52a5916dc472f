"""Papermill runs of notebooks/08_custom_datasets.ipynb: a learner's default run (the committed numbers, and
every claim of the prose), a SMOKE run, a run on a folder of one's own images (IMAGE_DIR), and broken folders
and bad parameters refused before anything is written."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from helpers.shapes import draw_shape
from tests.nbrun import assert_reproduces_committed, execute, execute_expecting_error, execute_like_a_learner

NAME = "08_custom_datasets"
TEST_IMAGES = 225  # a quarter of the 300 shapes per class, three classes
pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """One run at the defaults and the machine's default thread count, on the CPU the committed run used."""
    return execute_like_a_learner(NAME, tmp_path_factory.mktemp("nb08"), DEVICE="cpu")


def test_default_run_gives_the_committed_numbers(records):
    assert_reproduces_committed(NAME, records, [
        "test_acc", "test_acc_aug", "plain_acc_epoch3", "small_acc", "small_acc_max", "few_acc", "few_aug_acc",
        "few_acc_plain", "few_acc_aug", "pixel_mean",
    ])
    assert (records["n_train"], records["n_test"], records["n_classes"], records["epochs"]) == (675, 225, 3, 15)


def test_normalisation_claims(records):
    # section 2: "the average pixel is about 0.68"; after Normalize "down to about -2.7", "up to about 1.3"
    assert round(records["pixel_mean"], 2) == 0.68
    assert round(records["normalized_min"], 1) == -2.7 and round(records["normalized_max"], 1) == 1.3


def test_augmentation_on_all_images_claims(records):
    # section 5: "both ... about 99 % test accuracy after 15 epochs", "a few of the 225 test images apart"
    assert records["test_acc"] > 0.97 and records["test_acc_aug"] > 0.97
    assert abs(records["test_acc"] - records["test_acc_aug"]) * TEST_IMAGES <= 5
    # "its test loss ends close to its training loss"; the augmented training loss "the higher ... in most epochs"
    assert records["plain_test_loss"] - records["plain_train_loss"] < 0.1
    assert records["aug_train_loss_higher"] >= 10  # of 15


def test_underfitting_claims(records):
    # "stopped after 3 epochs ... fewer than half of the test images right"; "in the last epochs both losses low"
    assert records["plain_acc_epoch3"] < 0.5
    assert records["plain_test_loss_last3"] < 0.2
    # the tiny model: "the loss axis spans less than 0.01", "settle at about 1.099, which is ln 3", "stays at 33 %"
    assert records["small_loss_range"] < 0.01
    assert records["small_test_loss"] == pytest.approx(math.log(3), abs=0.002)
    assert records["small_acc"] == pytest.approx(1 / 3, abs=0.005)
    # three seeds: "one also ends at guessing and one gets about half ... all three stay far below" the full model
    assert records["small_at_chance"] == 2
    assert 0.4 < records["small_acc_max"] < 0.65 < records["test_acc"]


def test_overfitting_claims(records):
    # "the training loss keeps falling (to about 0.3, with 80 % of the training images right)"
    assert 0.2 < records["few_train_loss"] < 0.4 and records["few_train_acc"] >= 0.7
    # "the test loss ... rises from 1.1 to about 2.5", "its test accuracy stays near guessing (about 44 %)"
    assert records["few_test_loss_first"] == pytest.approx(1.1, abs=0.05)
    assert 2.0 < records["few_test_loss_max"] < 3.0
    assert 0.38 < records["few_acc"] < 0.5


def test_augmentation_against_overfitting_claims(records):
    # "training and test losses stay together (both about 0.9 at the end)", "its test accuracy ends higher"
    for key in ("few_aug_train_loss", "few_aug_test_loss"):
        assert 0.75 < records[key] < 1.0, key
    assert abs(records["few_aug_train_loss"] - records["few_aug_test_loss"]) < 0.15
    assert records["few_aug_acc"] > records["few_acc"]
    # three seeds: "ahead with every seed, by about 10 points on average (about 53 % ... against 43 %)",
    # "still far from the 99 % of section 5"
    assert records["few_aug_wins"] == 3
    assert 0.05 < records["few_acc_aug"] - records["few_acc_plain"] < 0.15
    assert 0.48 < records["few_acc_aug"] < 0.58 and 0.38 < records["few_acc_plain"] < 0.48
    assert records["few_acc_aug"] < records["test_acc"] - 0.3


def test_prediction_claims(records):
    # section 7: "all three files are classified correctly, whatever their size or mode"
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


@pytest.mark.parametrize("make", [broken_one_class, broken_empty_class, broken_unreadable_file, broken_missing])
def test_broken_own_folder_stops_in_the_validation_cell_before_writing(tmp_path, make):
    expected = make(tmp_path / "mine")
    error = execute_expecting_error(NAME, tmp_path, IMAGE_DIR=str(tmp_path / "mine"))
    assert error.startswith(f"ImageFolderError: {tmp_path / 'mine'}")
    assert expected in error
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text())["cells"]
    failed = [cell for cell in cells if any(o["output_type"] == "error" for o in cell.get("outputs", []))]
    assert failed == [validation_cell(tmp_path)]
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name, value", [("IMAGE_SIZE", 4), ("IMAGES_PER_CLASS", 3), ("IMAGE_DIR", 5)])
def test_bad_parameter_stops_before_writing(tmp_path, name, value):
    error = execute_expecting_error(NAME, tmp_path, **{name: value})
    assert error.startswith("ParameterError")
    assert f"{name} = {value}" in error
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()
