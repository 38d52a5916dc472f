"""Tests of helpers.checkpoint: round trips, exact resume, refusal of unsafe files, atomic saves, errors."""

from __future__ import annotations

import builtins
import copy
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    SaveError,
    UnsafeCheckpointError,
    checkpoint_hook,
    get_rng_state,
    load_checkpoint,
    load_weights,
    restore_checkpoint,
    safe_load,
    save_checkpoint,
    save_weights,
    set_rng_state,
)
from helpers.data import TensorPairDataset, load_digits, make_loaders, split_tensors
from helpers.device import set_seed
from helpers.engine import fit, predict
from helpers.models import MLP, TinyVGG

CPU = torch.device("cpu")
CONFIG = {"hidden_units": 32, "dropout": 0.2, "learning_rate": 0.003, "batch_size": 64}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    X_train, X_test, y_train, y_test = split_tensors(X[:600], y[:600], 0.25, seed=0)
    return TensorPairDataset(X_train, y_train), TensorPairDataset(X_test, y_test)


def build(digits, seed: int = 0):
    """A fresh model (with dropout), optimizer and loaders, as a new Python process would make them."""
    set_seed(seed)
    model = MLP(64, CONFIG["hidden_units"], 10, num_hidden_layers=2, dropout=CONFIG["dropout"])
    optimizer = torch.optim.Adam(model.parameters(), lr=CONFIG["learning_rate"])
    train_loader, test_loader = make_loaders(*digits, batch_size=CONFIG["batch_size"], seed=seed)
    return model, optimizer, train_loader, test_loader


def train(model, optimizer, train_loader, test_loader, epochs, **kwargs):
    return fit(model, train_loader, test_loader, nn.CrossEntropyLoss(), optimizer, epochs, CPU,
               progress="none", **kwargs)


def without_seconds(history):
    return [{k: v for k, v in metrics.items() if k != "seconds"} for metrics in history]


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    state_a, state_b = a.state_dict(), b.state_dict()
    return state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


# ---- round trips ---------------------------------------------------------------------------------

def test_loaded_weights_give_identical_predictions(digits, tmp_path):
    model, optimizer, train_loader, test_loader = build(digits)
    train(model, optimizer, train_loader, test_loader, 1)
    save_weights(model, tmp_path / "weights.pt")
    other = build(digits, seed=5)[0]
    assert not same_parameters(model, other)
    load_weights(other, tmp_path / "weights.pt")
    X = digits[1].X
    assert torch.equal(predict(model, X, CPU), predict(other, X, CPU))


def test_checkpoint_is_plain_data_that_torch_load_reads_with_weights_only(digits, tmp_path):
    model, optimizer, train_loader, test_loader = build(digits)
    history = train(model, optimizer, train_loader, test_loader, 1)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1, CONFIG, history, train_loader.generator)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(raw) == {"model", "optimizer", "epoch", "config", "history", "rng"}
    assert raw["epoch"] == 1 and raw["config"] == CONFIG and raw["history"] == history
    assert isinstance(raw["rng"]["python"][1], list) and isinstance(raw["rng"]["numpy"][1], list)
    assert isinstance(raw["rng"]["generator"], torch.Tensor)
    assert all(t.device.type == "cpu" for t in load_checkpoint(tmp_path / "c.pt", "cpu")["model"].values())


class FakeCuda:
    """A machine with ``count`` CUDA devices as torch.cuda reports them; nothing runs on a GPU."""

    def __init__(self, monkeypatch, count: int, initialized: bool = True):
        self.restored: dict[int, list[int]] = {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialized)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda index: torch.tensor([index, 7], dtype=torch.uint8))
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", self.not_this)
        monkeypatch.setattr(torch.cuda, "set_rng_state",
                            lambda state, index: self.restored.update({index: state.tolist()}))

    def not_this(self, *args):
        raise AssertionError("records every GPU, and starts CUDA")


@pytest.mark.parametrize("device", [None, "cpu", torch.device("cpu")])
def test_rng_state_of_a_cpu_run_does_not_start_cuda(monkeypatch, device):
    FakeCuda(monkeypatch, count=2, initialized=False)
    monkeypatch.setattr(torch.cuda, "get_rng_state", FakeCuda.not_this)
    assert get_rng_state(device=device)["cuda"] == {}


@pytest.mark.parametrize("device, recorded", [("cuda:1", {1: [1, 7]}), ("cuda", {0: [0, 7]}), (None, {0: [0, 7]})])
def test_rng_state_records_only_the_gpu_in_use(digits, tmp_path, monkeypatch, device, recorded):
    FakeCuda(monkeypatch, count=4)
    model, optimizer, train_loader, _ = build(digits)
    hook = checkpoint_hook(tmp_path / "c.pt", model, optimizer, CONFIG, generator=train_loader.generator,
                           device=device)
    hook(1, {"epoch": 1, "train_loss": 1.0})
    saved = load_checkpoint(tmp_path / "c.pt")["rng"]["cuda"]
    assert {index: state.tolist() for index, state in saved.items()} == recorded


@pytest.mark.parametrize("saved", [{1: torch.tensor([1, 7], dtype=torch.uint8)},
                                   [torch.tensor([0, 7], dtype=torch.uint8)] * 2])  # the older format: all GPUs
def test_restoring_without_the_saved_gpu_warns_that_the_resume_differs(monkeypatch, saved):
    state = {**get_rng_state(), "cuda": saved}
    cuda = FakeCuda(monkeypatch, count=1)
    with pytest.warns(UserWarning, match=r"state of cuda:1, and this machine has 1 CUDA device.*not bit-identical"):
        set_rng_state(state)
    assert 1 not in cuda.restored
    cuda = FakeCuda(monkeypatch, count=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_rng_state(state)
    assert cuda.restored[1] in ([1, 7], [0, 7])


def test_random_state_has_one_home_and_checkpoint_reexports_it():
    import helpers.device

    assert get_rng_state is helpers.device.get_rng_state and set_rng_state is helpers.device.set_rng_state


def test_restore_asked_for_a_loader_generator_it_did_not_save_changes_nothing(digits, tmp_path):
    model, optimizer, train_loader, _ = build(digits)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1, CONFIG, [])  # no generator given
    fresh, fresh_optimizer, fresh_loader, _ = build(digits, seed=7)
    before, torch_state = copy.deepcopy(fresh.state_dict()), torch.get_rng_state()
    with pytest.raises(CheckpointError, match=r"^the checkpoint has no data loader generator state to restore$"):
        restore_checkpoint(load_checkpoint(tmp_path / "c.pt"), fresh, fresh_optimizer, fresh_loader.generator)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_restoring_a_gpu_state_on_a_cpu_only_machine_warns(monkeypatch):
    state = {**get_rng_state(), "cuda": {0: torch.tensor([0, 7], dtype=torch.uint8)}}
    FakeCuda(monkeypatch, count=0)
    with pytest.warns(UserWarning, match=r"cuda:0, and this machine has 0 CUDA device"):
        set_rng_state(state)


# ---- exact resume --------------------------------------------------------------------------------

def resume(digits, path, scramble: str = ""):
    """Resume from ``path`` in fresh objects; ``scramble`` breaks one piece of the restore on purpose."""
    model, optimizer, train_loader, test_loader = build(digits, seed=7)  # a different start on purpose
    checkpoint = load_checkpoint(path)
    generator = None if scramble == "loader" else train_loader.generator
    start = restore_checkpoint(checkpoint, model, optimizer, generator)
    if scramble == "dropout":
        torch.manual_seed(123)
    history = train(model, optimizer, train_loader, test_loader, 4 - checkpoint["epoch"],
                    start_epoch=start)
    return model, checkpoint["history"] + history


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    """A 4-epoch reference run, and a 2-epoch run that saved a checkpoint each epoch."""
    folder = tmp_path_factory.mktemp("resume")
    reference = build(digits)
    reference_history = train(*reference, 4)
    model, optimizer, train_loader, test_loader = build(digits)
    hook = checkpoint_hook(folder / "last.pt", model, optimizer, CONFIG, generator=train_loader.generator)
    interrupted_history = train(model, optimizer, train_loader, test_loader, 2, on_epoch_end=hook)
    return reference[0], reference_history, folder / "last.pt", interrupted_history


def test_hook_saves_each_epoch_with_the_history(runs):
    _, _, path, interrupted_history = runs
    checkpoint = load_checkpoint(path)
    assert checkpoint["epoch"] == 2 and checkpoint["history"] == interrupted_history


def test_resume_is_bit_identical_to_uninterrupted_training(digits, runs):
    reference, reference_history, path, _ = runs
    model, history = resume(digits, path)
    assert same_parameters(model, reference)
    assert [m["epoch"] for m in history] == [1, 2, 3, 4]
    assert without_seconds(history) == without_seconds(reference_history)


def test_one_checkpoint_in_memory_restores_identically_twice(digits, runs):
    reference, _, path, _ = runs
    checkpoint = load_checkpoint(path)
    for seed in (7, 8):  # the first resume must not change the checkpoint's optimizer tensors
        model, optimizer, train_loader, test_loader = build(digits, seed=seed)
        start = restore_checkpoint(checkpoint, model, optimizer, train_loader.generator)
        train(model, optimizer, train_loader, test_loader, 2, start_epoch=start)
        assert same_parameters(model, reference)


@pytest.mark.parametrize("scramble", ["loader", "dropout"])
def test_resume_needs_the_loader_and_dropout_random_states(digits, runs, scramble):
    reference, _, path, _ = runs
    model, _ = resume(digits, path, scramble)
    assert not same_parameters(model, reference)


# ---- unsafe files --------------------------------------------------------------------------------

def test_file_that_runs_code_when_unpickled_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    for loader in (load_checkpoint, lambda p: load_weights(nn.Linear(1, 1), p)):
        with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*evil\.pt.*mkdir"):
            loader(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what the refusal protects against
    assert marker.exists()


def test_whole_model_pickle_is_refused_with_advice(tmp_path):
    torch.save(MLP(64, 8, 10), tmp_path / "whole.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"helpers\.models\.MLP.*state_dict"):
        load_weights(MLP(64, 8, 10), tmp_path / "whole.pt")


# ---- atomic saves --------------------------------------------------------------------------------

@pytest.fixture
def earlier(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "last.pt", model, optimizer, 1, CONFIG, [{"epoch": 1}])
    return model, optimizer, tmp_path


def test_save_failing_part_way_keeps_the_earlier_checkpoint_and_no_temp_file(earlier, monkeypatch):
    model, optimizer, folder = earlier
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(SaveError, match=r"could not save .*last\.pt \(No space left on device\); any earlier"):
        save_checkpoint(folder / "last.pt", model, optimizer, 2, CONFIG, [])
    assert os.listdir(folder) == ["last.pt"]
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1


@pytest.mark.parametrize("config, message", [
    ({"activation": lambda x: x}, r"config\['activation'\] in last\.pt: a function, .*a name, not a function"),
    ({"paths": {"data_dir": Path("data")}},
     r"config\['paths'\]\['data_dir'\] in last\.pt: a pathlib\.\w*Path.*str\(path\)"),
    ({"dropout": np.float64(0.2)}, r"config\['dropout'\] in last\.pt: a numpy\.float64.*float\(x\)"),
    ({"sizes": [16, np.int64(32)]}, r"config\['sizes'\]\[1\] in last\.pt: a numpy\.int64.*int\(x\)"),
    ({"mean": np.zeros(3)}, r"config\['mean'\] in last\.pt: a numpy\.ndarray.*x\.tolist\(\)"),
])
def test_config_that_weights_only_could_not_read_back_is_refused_when_saving(earlier, config, message):
    model, optimizer, folder = earlier
    with pytest.raises(SaveError, match=rf"cannot save {message}"):
        save_checkpoint(folder / "last.pt", model, optimizer, 2, config, [])
    assert os.listdir(folder) == ["last.pt"]
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1


def test_numpy_learning_rate_is_named_by_its_place_in_the_optimizer(earlier):
    model, _, folder = earlier
    optimizer = torch.optim.SGD(model.parameters(), lr=np.float64(0.1))  # as np.logspace gives it
    with pytest.raises(SaveError, match=r"cannot save optimizer\['param_groups'\]\[0\]\['lr'\] in"):
        save_checkpoint(folder / "last.pt", model, optimizer, 2, CONFIG, [])
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1


def test_failing_rename_keeps_the_earlier_checkpoint_and_no_temp_file(earlier, monkeypatch):
    model, optimizer, folder = earlier

    def broken_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SaveError, match=r"could not save .*last\.pt.*earlier file there is unchanged"):
        save_checkpoint(folder / "last.pt", model, optimizer, 2, CONFIG, [])
    assert os.listdir(folder) == ["last.pt"]
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1


def test_save_into_a_folder_that_cannot_exist_says_so(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(SaveError, match=r"could not save .*a_file/w\.pt.*writable"):
        save_weights(nn.Linear(1, 1), tmp_path / "a_file" / "w.pt")


# ---- bad input -----------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at .*nope\.pt.*run the training") as info:
        load_checkpoint(tmp_path / "nope.pt")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "text"])
def test_corrupt_file(tmp_path, damage):
    path = tmp_path / "c.pt"
    save_weights(nn.Linear(8, 8), path)
    data = path.read_bytes()
    damaged = {"random": np.random.default_rng(0).bytes(len(data)), "truncated": data[: len(data) // 2],
               "empty": b"", "text": b"half a download"}[damage]
    path.write_bytes(damaged)
    with pytest.raises(CorruptCheckpointError, match=r"c\.pt is damaged or not a PyTorch file.*save it again"):
        load_weights(nn.Linear(8, 8), path)


@pytest.mark.parametrize("other, detail", [
    (MLP(64, 16, 10), "size mismatch"),
    (TinyVGG(1, 8, 10), "Missing key"),
])
def test_weights_from_another_architecture(tmp_path, other, detail):
    save_weights(MLP(64, 32, 10), tmp_path / "w.pt")
    with pytest.raises(CheckpointMismatchError, match=rf"do not fit this .*{detail}.*same architecture"):
        load_weights(other, tmp_path / "w.pt")


def test_weights_file_is_not_a_checkpoint(tmp_path):
    save_weights(nn.Linear(2, 2), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"not a training checkpoint \(missing model, optimizer.*load_weights"):
        load_checkpoint(tmp_path / "w.pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_checkpoint_mapped_to_cuda_restores(digits, tmp_path):
    model, optimizer, train_loader, test_loader = build(digits)
    history = train(model, optimizer, train_loader, test_loader, 1)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, 1, CONFIG, history, train_loader.generator)
    checkpoint = load_checkpoint(tmp_path / "c.pt", map_location="cuda")
    assert all(t.is_cuda for t in checkpoint["model"].values())
    cuda_model = build(digits, seed=3)[0].to("cuda")
    assert restore_checkpoint(checkpoint, cuda_model, None, train_loader.generator) == 2
    assert same_parameters(cuda_model.cpu(), model)


def test_unreadable_file_says_it_cannot_be_read(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    save_weights(nn.Linear(2, 2), path)
    real_open = builtins.open

    def no_permission(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_permission)  # root reads any file, so chmod cannot show it
    with pytest.raises(CheckpointError, match=r"cannot read .*w\.pt \(Permission denied\): check the") as info:
        load_weights(nn.Linear(2, 2), path)
    assert not isinstance(info.value, CorruptCheckpointError)


def save_as_if_on(location: str, path, monkeypatch) -> None:
    """Write a state dict whose tensors are recorded as saved on ``location`` (a GPU this machine may lack)."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: location)
        torch.save(nn.Linear(2, 2).state_dict(), path)


@pytest.mark.parametrize("location, cuda_devices", [("cuda:0", 0), ("cuda:2", 1)])
def test_gpu_saved_file_on_a_machine_without_that_gpu(tmp_path, monkeypatch, location, cuda_devices):
    save_as_if_on(location, tmp_path / "gpu.pt", monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on"):  # what torch alone says
        torch.load(tmp_path / "gpu.pt", map_location=None, weights_only=True)
    with pytest.raises(CheckpointError, match=rf"gpu\.pt was saved from a GPU \({location}\) that this machine "
                                              r"does not have: pass map_location=\"cpu\"") as info:
        load_weights(nn.Linear(2, 2), tmp_path / "gpu.pt", map_location=None)
    assert not isinstance(info.value, CorruptCheckpointError)
    load_weights(nn.Linear(2, 2), tmp_path / "gpu.pt")  # the default map_location="cpu" reads it


def test_map_location_to_a_missing_gpu_says_so(tmp_path, monkeypatch):
    save_weights(nn.Linear(2, 2), tmp_path / "w.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CheckpointError, match=r"cannot load w\.pt to map_location='cuda': this machine has no such"):
        load_weights(nn.Linear(2, 2), tmp_path / "w.pt", map_location="cuda")


def test_unsafe_file_is_told_from_a_damaged_one_without_reading_torchs_message(tmp_path, monkeypatch):
    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"model": Payload()}, tmp_path / "evil.pt")

    def reworded_load(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed: blocked")  # no "GLOBAL", no "add_safe_globals"

    monkeypatch.setattr(torch, "load", reworded_load)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*evil\.pt: it refers to .*getcwd"):
        safe_load(tmp_path / "evil.pt")
    save_weights(nn.Linear(2, 2), tmp_path / "w.pt")
    with pytest.raises(CorruptCheckpointError, match=r"w\.pt is damaged"):
        safe_load(tmp_path / "w.pt")


@pytest.mark.parametrize("failure, message", [
    (MemoryError(), r"not enough memory to load .*w\.pt \(0\.0 MiB on disk\): close other notebooks"),
    (OSError(5, "Input/output error"), r"could not read .*w\.pt \(Input/output error\): the disk or network"),
])
def test_memory_and_read_errors_while_loading_are_not_called_damaged(tmp_path, monkeypatch, failure, message):
    save_weights(nn.Linear(2, 2), tmp_path / "w.pt")

    def failing_load(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torch, "load", failing_load)
    with pytest.raises(CheckpointError, match=message) as info:
        load_weights(nn.Linear(2, 2), tmp_path / "w.pt")
    assert not isinstance(info.value, CorruptCheckpointError)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # random bytes may name any protocol
def test_any_garbage_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "garbage.pt"
    rng = np.random.default_rng(0)
    for _ in range(200):  # random bytes break the unpickler in many different ways
        path.write_bytes(rng.bytes(int(rng.integers(1, 3000))))
        with pytest.raises(CorruptCheckpointError, match="is damaged or not a PyTorch file"):
            safe_load(path)
