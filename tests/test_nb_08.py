"""Papermill runs of notebooks/08_custom_datasets.ipynb."""

from __future__ import annotations

import pytest

from tests.nbrun import execute, execute_expecting_error

NAME = "08_custom_datasets"
pytestmark = pytest.mark.notebook


def test_smoke_run_records_values_and_writes_where_asked(tmp_path):
    records = execute(NAME, tmp_path, SMOKE=True)
    assert records["_headline"] == "test_acc"
    assert records["n_classes"] == 3
    assert records["n_train"] == 27  # SMOKE: 12 images per class, 3 of them for testing
    assert records["epochs"] == 2
    for key in ("test_acc", "test_acc_aug"):
        assert 0.0 <= records[key] <= 1.0 and isinstance(records[key], float)
    assert records["custom_prediction"] in {"circle", "square", "triangle"}
    assert records["custom_correct"] in {0, 1, 2, 3} and isinstance(records["custom_correct"], int)
    shapes = tmp_path / "data" / "shapes_32px_12each"
    assert len(list((shapes / "train").glob("*/*.png"))) == 27
    assert len(list((shapes / "test").glob("*/*.png"))) == 9
    custom = tmp_path / "runs" / "custom_images"
    assert sorted(p.name for p in custom.iterdir()) == [
        "circle_grayscale.png", "square_300px.jpg", "triangle_200x150_rgba.png"]
    assert (tmp_path / "runs" / "bad_folders" / "broken" / "circle" / "photo.png").exists()


@pytest.mark.parametrize("name, value", [("IMAGE_SIZE", 0), ("IMAGE_SIZE", 4)])
def test_bad_image_size_stops_before_writing(tmp_path, name, value):
    error = execute_expecting_error(NAME, tmp_path, **{name: value})
    assert error.startswith("ParameterError")
    assert f"{name} = {value}" in error
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "data").exists()
