"""helpers.distributed and helpers.train under torchrun: the batch split, the test shares, each process's device
(GPUs faked), and a real two-process run of the one training script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import helpers.distributed
from helpers.data import TensorPairDataset
from helpers.device import set_seed
from helpers.distributed import ShardedLoader, check_batch_size, eval_share, process_device, process_rank
from helpers.models import build_model
from helpers.params import ParameterError
from helpers.train import main, train


def labelled_indices(n: int) -> TensorPairDataset:
    """A data set whose labels are the example indices, to see which examples each batch holds."""
    return TensorPairDataset(torch.zeros(n, 1), torch.arange(n))


@pytest.mark.parametrize(("n", "batch_size", "world_size"), [(37, 8, 2), (100, 12, 3), (64, 16, 4)])
def test_the_processes_together_see_exactly_the_single_process_batches(n, batch_size, world_size):
    data = labelled_indices(n)
    single = ShardedLoader(data, batch_size, rank=0, world_size=1, seed=3)
    shares = [ShardedLoader(data, batch_size, rank, world_size, seed=3) for rank in range(world_size)]
    for _ in (1, 2):  # two epochs: each pass shuffles anew, the same way in every process
        per_rank = [[y.tolist() for _, y in loader] for loader in shares]
        expected = [y.tolist() for _, y in single]
        assert len(expected) == len(single) == n // batch_size  # the short last batch is dropped
        for k, batch in enumerate(expected):
            local = [per_rank[rank][k] for rank in range(world_size)]
            assert all(len(part) == batch_size // world_size for part in local)
            assert sorted(sum(local, [])) == sorted(batch)  # disjoint shares that make up the batch


def test_each_pass_is_a_new_epoch_with_a_new_shuffle():
    loader = ShardedLoader(labelled_indices(40), 8, rank=0, world_size=1, seed=0)
    first, second = ([y.tolist() for _, y in loader] for _ in range(2))
    assert first != second and sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(40))
    again = ShardedLoader(labelled_indices(40), 8, rank=0, world_size=1, seed=0)
    assert [y.tolist() for _, y in again] == first  # epoch 1 again: the same order
    assert (loader.epoch, again.epoch) == (2, 1)


@pytest.mark.parametrize(("n", "world_size"), [(359, 2), (10, 3), (2, 3)])
def test_test_shares_are_disjoint_and_cover_every_example_once(n, world_size):
    X, y = torch.zeros(n, 1), torch.arange(n)
    shares = [eval_share(X, y, rank, world_size).y.tolist() for rank in range(world_size)]
    assert sorted(sum(shares, [])) == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_process_started_alone_is_rank_0_of_1(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert process_rank() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_rank() == (3, 4, 1)


def test_batch_size_must_split_evenly_over_the_processes():
    assert check_batch_size(64, 2) == 32
    with pytest.raises(ParameterError, match=r"^BATCH_SIZE = 63 is not allowed: with 2 processes it must be a "
                                             r"multiple of 2"):
        check_batch_size(63, 2)


def test_batch_size_that_does_not_split_exits_2_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun would set it
    monkeypatch.setenv("RANK", "0")
    assert main(["--batch-size", "63", "--out", str(tmp_path / "out")]) == 2
    assert "BATCH_SIZE = 63 is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA devices, faked: the calls to torch.cuda.set_device are recorded, not made."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.append(("set_device", index)))
    return calls


@pytest.mark.parametrize("local_rank", [0, 1])
def test_each_process_takes_the_gpu_of_its_local_rank_and_makes_it_current(two_gpus, local_rank):
    assert process_device(torch.device("cuda"), local_rank, world_size=2) == torch.device("cuda", local_rank)
    assert two_gpus == [("set_device", local_rank)]


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_one_process_keeps_the_gpu_it_was_given(two_gpus, name):
    assert process_device(torch.device(name), local_rank=0, world_size=1) == torch.device(name)
    assert two_gpus == []


def test_a_gpu_number_with_several_processes_is_a_clear_error(two_gpus):
    with pytest.raises(ParameterError, match=r"^DEVICE = 'cuda:1' is not allowed with 2 processes: each process "
                                             r"uses the GPU of its LOCAL_RANK \(cuda:0, cuda:1, ...\), so give "
                                             r"--device cuda\.$"):
        process_device(torch.device("cuda:1"), local_rank=0, world_size=2)
    assert two_gpus == []


def test_local_rank_without_a_gpu_is_a_clear_error(two_gpus):
    with pytest.raises(ParameterError) as info:
        process_device(torch.device("cuda"), 2, world_size=3)
    assert str(info.value).startswith("LOCAL_RANK = 2 has no GPU: this machine has 2 CUDA device(s), so start at "
                                      "most 2 process(es) per machine (torchrun --nproc_per_node=2)")
    assert two_gpus == []  # nothing was switched


@pytest.mark.parametrize("local_rank", [0, 1, 5])
def test_cpu_processes_share_the_cpu_unchanged(two_gpus, local_rank):
    assert process_device(torch.device("cpu"), local_rank, world_size=6) == torch.device("cpu")
    assert two_gpus == []


def test_gpu_is_made_current_before_the_nccl_group_starts(two_gpus, monkeypatch, tmp_path):
    class GroupStarted(Exception):
        pass

    def init_process_group(backend, **kwargs):
        two_gpus.append(("init_process_group", backend, kwargs))
        raise GroupStarted  # stop here: there is no GPU and no other process

    monkeypatch.setattr(helpers.distributed.dist, "init_process_group", init_process_group)
    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(GroupStarted):
        main(["--device", "cuda", "--out", str(tmp_path / "out")])
    assert two_gpus == [("set_device", 1), ("init_process_group", "nccl", {"device_id": torch.device("cuda", 1)})]


def test_more_processes_than_gpus_exits_2_before_the_group_starts(two_gpus, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(helpers.distributed.dist, "init_process_group",
                        lambda *args, **kwargs: pytest.fail("the process group must not start"))
    for name, value in {"RANK": "0", "LOCAL_RANK": "2", "WORLD_SIZE": "3"}.items():
        monkeypatch.setenv(name, value)
    assert main(["--device", "cuda", "--batch-size", "63", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "error: LOCAL_RANK = 2 has no GPU" in error
    assert not (tmp_path / "out").exists() and two_gpus == []


def test_a_world_of_one_process_starts_no_group(monkeypatch, tmp_path):
    monkeypatch.setattr(helpers.distributed.dist, "init_process_group",
                        lambda *args, **kwargs: pytest.fail("one process has no one to join"))
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():  # torchrun --nproc_per_node=1
        monkeypatch.setenv(name, value)
    assert main(["--model", "mlp", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "history.json").read_text())["config"]["world_size"] == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.notebook  # starts three Python processes: seconds, like a notebook run
def test_two_processes_with_ddp_end_with_the_weights_of_one_process(tmp_path):
    settings = {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 7}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "helpers.train",
               "--model", "mlp", "--hidden-units", "16", "--device", "cpu", "--out", str(tmp_path),
               *[f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0 of 2: batches of 16" in result.stdout and "rank 1 of 2: batches of 16" in result.stdout
    assert sum(line.startswith("epoch") for line in result.stdout.splitlines()) == 2  # rank 0 only prints
    assert {p.name for p in tmp_path.iterdir()} == {"history.json", "model.pt"}  # rank 0 only, no temp files

    single, single_history = train("digits", "mlp", 16, settings["epochs"], settings["batch_size"],
                                   settings["lr"], settings["seed"], torch.device("cpu"), progress="none")
    ddp_weights = torch.load(tmp_path / "model.pt", weights_only=True)
    set_seed(settings["seed"])
    initial = build_model("mlp", hidden_units=16)  # the weights both runs started from
    for name, tensor in single.state_dict().items():
        assert torch.allclose(ddp_weights[name], tensor, rtol=0, atol=1e-4), name
        assert not torch.allclose(initial.state_dict()[name], tensor, atol=1e-3)  # training moved them
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["config"]["world_size"] == 2
    ddp_history = saved["history"]
    assert [h["epoch"] for h in ddp_history] == [1, 2]
    for ddp_epoch, single_epoch in zip(ddp_history, single_history, strict=True):
        for key in ("train_loss", "test_loss"):  # the test loss over all 359 images, from two shares
            assert ddp_epoch[key] == pytest.approx(single_epoch[key], abs=1e-4)
        for key, images in (("train_acc", 1438 // 32 * 32), ("test_acc", 359)):  # at most one image apart
            assert abs(ddp_epoch[key] - single_epoch[key]) * images <= 1 + 1e-9
