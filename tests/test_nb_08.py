"""Papermill runs of notebooks/08_custom_datasets.ipynb."""

from __future__ import annotations

import pytest

from tests.nbrun import execute, execute_expecting_error

NAME = "08_custom_datasets"
pytestmark = pytest.mark.notebook


def test_smoke_run_records_values_and_writes_where_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it: CPU results are bitwise repeatable
    records = execute(NAME, tmp_path, SMOKE=True, DEVICE="cpu")  # the GPU path is run by nbval (DEVICE="auto")
    assert records["_headline"] == "test_acc"
    assert records["n_classes"] == 3
    assert records["n_train"] == 27  # SMOKE: 12 images per class, 3 of them for testing
    assert records["epochs"] == 2
    # 2 epochs on 27 images do not learn the shapes yet (test_default_run_learns_the_shapes checks learning)
    shapes = tmp_path / "data" / "shapes_32px_12each"
    assert len(list((shapes / "train").glob("*/*.png"))) == 27
    assert len(list((shapes / "test").glob("*/*.png"))) == 9
    custom = tmp_path / "runs" / "custom_images"
    assert sorted(p.name for p in custom.iterdir()) == [
        "circle_grayscale.png", "square_300px.jpg", "triangle_200x150_rgba.png"]
    assert (tmp_path / "runs" / "bad_folders" / "broken" / "circle" / "photo.png").exists()


def test_default_run_learns_the_shapes_and_predicts_the_drawn_files(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    records = execute(NAME, tmp_path, DEVICE="cpu")
    # chance is 1/3; the committed run reaches about 0.99 on 225 test images
    assert records["test_acc"] > 0.9 and records["test_acc_aug"] > 0.9
    assert records["custom_correct"] >= 2  # of the 3 drawn files of other sizes and colour modes


@pytest.mark.parametrize("name, value", [("IMAGE_SIZE", 0), ("IMAGE_SIZE", 4)])
def test_bad_image_size_stops_before_writing(tmp_path, name, value):
    error = execute_expecting_error(NAME, tmp_path, **{name: value})
    assert error.startswith("ParameterError")
    assert f"{name} = {value}" in error
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()
