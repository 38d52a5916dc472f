"""07_computer_vision through papermill: smoke runs on both offline sets, an online set offline, a bad name."""

import json
import socket
from pathlib import Path

import pytest
from torchvision.datasets import FashionMNIST

from tests.nbrun import execute, execute_expecting_error
from tests.test_vision import write_mnist_like

pytestmark = pytest.mark.notebook

NAME = "07_computer_vision"
SHAPES = "shapes_32px_30each"  # SMOKE: 30 generated images per class, a quarter of them for testing


def comparison(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "runs" / "comparison.json").read_text())


def n_test_images(tmp_path: Path) -> int:
    return len(list((tmp_path / "data" / SHAPES / "test").glob("*/*.png")))


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory) -> tuple[dict, Path]:
    """SMOKE on the shapes set, run once for the module: every SMOKE run's shapes comparison must match it."""
    tmp_path = tmp_path_factory.mktemp("shapes")
    return execute(NAME, tmp_path, SMOKE=True, DATASET="shapes"), tmp_path


def assert_same_shapes_comparison(tmp_path: Path, records: dict, shapes_run: tuple[dict, Path]) -> None:
    """The shapes comparison of a run on another set (helpers.compare.compare_models) gives what the
    notebook's own loop gave on the shapes set: same models, sizes and test accuracies. Bitwise on the
    CPU; on a GPU, nondeterministic kernels may change the prediction of one test image."""
    reference_records, reference_path = shapes_run
    assert records["device"] == reference_records["device"]
    tolerance = 0 if records["device"] == "cpu" else 1 / n_test_images(reference_path) + 1e-9
    rows, reference = comparison(tmp_path)["shapes_rows"], comparison(reference_path)["rows"]
    assert [row["model"] for row in rows] == [row["model"] for row in reference] == ["linear", "mlp", "tinyvgg"]
    for row, expected in zip(rows, reference, strict=True):
        assert row["parameters"] == expected["parameters"], row["model"]
        assert row["test_acc"] == pytest.approx(expected["test_acc"], abs=tolerance), row["model"]
    shapes_acc = {row["model"]: row["test_acc"] for row in rows}
    assert (records["shapes_cnn_test_acc"], records["shapes_mlp_test_acc"]) == (shapes_acc["tinyvgg"],
                                                                                shapes_acc["mlp"])


def assert_wrote_only_its_artifacts(tmp_path: Path) -> None:
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"comparison.json", "confusion_matrix.png"}
    assert [p.name for p in (tmp_path / "data").iterdir()] == [SHAPES]  # generated under DATA_DIR, nowhere else


def test_smoke_run_on_shapes_compares_three_models(shapes_run):
    records, tmp_path = shapes_run
    assert records["_headline"] == "cnn_test_acc"
    assert records["dataset"] == "shapes" and records["epochs"] == 2
    summary = comparison(tmp_path)
    assert summary["shapes_rows"] == summary["rows"]  # shapes is the main comparison: not run twice
    accuracy = {row["model"]: row["test_acc"] for row in summary["rows"]}
    assert (records["cnn_test_acc"], records["mlp_test_acc"], records["linear_test_acc"]) == (
        accuracy["tinyvgg"], accuracy["mlp"], accuracy["linear"])
    assert records["shapes_cnn_test_acc"] == records["cnn_test_acc"]
    n_test = n_test_images(tmp_path)
    assert n_test == 24  # 3 classes x 8 (a quarter of 30, rounded)
    for name, value in accuracy.items():  # fractions of the 24 generated test images
        assert value * n_test == pytest.approx(round(value * n_test), abs=1e-9), name
    # 2 epochs on 66 images barely starts; the linear model is already above guessing (1/3)
    assert records["linear_test_acc"] > 1 / 3 + 0.1
    assert_wrote_only_its_artifacts(tmp_path)


def test_smoke_run_on_digits_learns_with_every_model(tmp_path, shapes_run):
    records = execute(NAME, tmp_path, SMOKE=True, DATASET="digits")
    assert records["_headline"] == "cnn_test_acc"
    assert records["dataset"] == "digits" and records["epochs"] == 2
    # 2 epochs on 1,437 digits: every model is far above guessing (0.1) on the 359 test digits
    for name in ("cnn_test_acc", "mlp_test_acc", "linear_test_acc"):
        assert records[name] > 0.25, name
    assert_same_shapes_comparison(tmp_path, records, shapes_run)
    assert_wrote_only_its_artifacts(tmp_path)


@pytest.fixture
def refused_proxy(monkeypatch):
    """Send the kernel's HTTP(S) traffic to a local port that refuses it: no download can reach the network."""
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused at once
        proxy = f"http://127.0.0.1:{closed_port.getsockname()[1]}"
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, proxy)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        yield


def test_online_dataset_offline_stops_with_one_clear_message(tmp_path, refused_proxy):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, DATASET="mnist")
    assert error.startswith("DatasetUnavailableError: DATASET = 'mnist' is not in ")
    assert "choose an offline data set, DATASET = 'digits' or 'shapes'" in error
    assert str(tmp_path / "data" / "MNIST" / "raw") in error  # the folder to put the files in by hand
    assert not (tmp_path / "runs" / "comparison.json").exists()


def test_unknown_dataset_stops_in_validation_before_writing(tmp_path):
    error = execute_expecting_error(NAME, tmp_path, SMOKE=True, DATASET="svhn")
    assert error.startswith("ParameterError: DATASET = 'svhn' is not allowed: choose one of 'digits', "
                            "'shapes', 'fashion_mnist', 'mnist', 'cifar10'.")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_downloadable_set_whose_files_are_in_data_dir_runs_without_network(tmp_path, refused_proxy, shapes_run):
    write_mnist_like(tmp_path / "data", FashionMNIST, n_train=40, n_test=20)  # random pixels and labels
    records = execute(NAME, tmp_path, SMOKE=True, DATASET="fashion_mnist")
    assert records["dataset"] == "fashion_mnist"
    rows = {row["model"]: row for row in comparison(tmp_path)["rows"]}
    assert rows["linear"]["parameters"] == 28 * 28 * 10 + 10  # trained on the 28x28 grey images written here
    for name, row in rows.items():  # and tested on their 20 test images (random labels: nothing to learn)
        assert row["test_acc"] * 20 == pytest.approx(round(row["test_acc"] * 20), abs=1e-9), name
    assert records["cnn_test_acc"] == rows["tinyvgg"]["test_acc"]
    assert_same_shapes_comparison(tmp_path, records, shapes_run)
