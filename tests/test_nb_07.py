"""07_computer_vision through papermill: smoke runs on both offline sets, an online set offline, a bad name."""

import socket

import pytest
from torchvision.datasets import FashionMNIST

from tests.nbrun import execute, execute_expecting_error
from tests.test_vision import write_mnist_like

pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("dataset", ["digits", "shapes"])
def test_smoke_run_compares_three_models_and_records_accuracies(tmp_path, dataset):
    records = execute("07_computer_vision", tmp_path, SMOKE=True, DATASET=dataset)
    assert records["_headline"] == "cnn_test_acc"
    assert records["dataset"] == dataset and records["epochs"] == 2
    chance = 0.1 if dataset == "digits" else 1 / 3
    for name in ("cnn_test_acc", "mlp_test_acc", "linear_test_acc", "shapes_cnn_test_acc",
                 "shapes_mlp_test_acc"):
        assert 0 <= records[name] <= 1, name
    assert records["linear_test_acc"] > chance + 0.1  # 2 epochs on tiny data: clearly above guessing
    if dataset == "shapes":  # the shapes comparison is the main one, not run twice
        assert records["shapes_cnn_test_acc"] == records["cnn_test_acc"]
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"comparison.json", "confusion_matrix.png"}
    shapes_folders = [p.name for p in (tmp_path / "data").iterdir()]
    assert shapes_folders == ["shapes_32px_30each"]  # generated under DATA_DIR, nowhere else


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
    error = execute_expecting_error("07_computer_vision", tmp_path, SMOKE=True, DATASET="mnist")
    assert error.startswith("DatasetUnavailableError: DATASET = 'mnist' is not in ")
    assert "choose an offline data set, DATASET = 'digits' or 'shapes'" in error
    assert str(tmp_path / "data" / "MNIST" / "raw") in error  # the folder to put the files in by hand
    assert not (tmp_path / "runs" / "comparison.json").exists()


def test_unknown_dataset_stops_in_validation_before_writing(tmp_path):
    error = execute_expecting_error("07_computer_vision", tmp_path, SMOKE=True, DATASET="svhn")
    assert error.startswith("ParameterError: DATASET = 'svhn' is not allowed: choose one of 'digits', "
                            "'shapes', 'fashion_mnist', 'mnist', 'cifar10'.")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_downloadable_set_whose_files_are_in_data_dir_runs_without_network(tmp_path, refused_proxy):
    write_mnist_like(tmp_path / "data", FashionMNIST, n_train=40, n_test=20)
    records = execute("07_computer_vision", tmp_path, SMOKE=True, DATASET="fashion_mnist")
    assert records["dataset"] == "fashion_mnist" and 0 <= records["cnn_test_acc"] <= 1
