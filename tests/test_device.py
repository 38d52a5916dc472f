"""helpers.device: the cuda > mps > cpu choice (availability faked, so every case runs everywhere) and random state."""

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import helpers.checkpoint
import helpers.device
from helpers.device import (
    available_devices,
    get_device,
    get_rng_state,
    make_generator,
    set_rng_state,
    set_seed,
    synchronize,
)
from helpers.params import ParameterError


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has CUDA (with ``cuda_count`` devices) and/or Apple's MPS, or neither."""
    def fake(cuda: bool, mps: bool, cuda_count: int = 1) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_count if cuda else 0)
        monkeypatch.setattr(helpers.device, "_mps_available", lambda: mps)
    return fake


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, ["cuda", "mps", "cpu"]),
    (True, False, ["cuda", "cpu"]),
    (False, True, ["mps", "cpu"]),
    (False, False, ["cpu"]),
])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert available_devices() == expected
    assert get_device("auto") == torch.device(expected[0])
    assert get_device("cpu") == torch.device("cpu")  # always usable, whatever else there is


@pytest.mark.parametrize(("cuda", "mps", "name", "available"), [
    (False, True, "cuda", "'mps', 'cpu'"),
    (False, False, "cuda", "'cpu'"),
    (False, False, "cuda:0", "'cpu'"),
    (True, False, "mps", "'cuda', 'cpu'"),
])
def test_unavailable_device_names_parameter_and_what_is_available(machine, cuda, mps, name, available):
    machine(cuda=cuda, mps=mps)
    with pytest.raises(ParameterError) as info:
        get_device(name)
    assert str(info.value) == (f"DEVICE = {name!r} is not available on this machine: available here are "
                               f"{available}. Use DEVICE = 'auto' to pick the best one.")


def test_cuda_index_must_be_below_the_device_count(machine):
    machine(cuda=True, mps=False, cuda_count=2)
    assert get_device("cuda:1") == torch.device("cuda", 1)
    for name in ("cuda:2", "cuda:3"):
        with pytest.raises(ParameterError) as info:
            get_device(name)
        assert str(info.value) == (f"DEVICE = {name!r} is not available: this machine has 2 CUDA device(s), "
                                   "numbered from 0.")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:-1", "", "tpu", "CPU", 0, None])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(ParameterError, match="DEVICE = .* is not allowed"):
        get_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range_on_a_real_gpu():
    with pytest.raises(ParameterError, match="numbered from 0"):
        get_device(f"cuda:{torch.cuda.device_count()}")


def test_synchronize_waits_for_the_device_it_is_given_and_skips_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("cuda", device)))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    synchronize(torch.device("cpu"))
    assert calls == []
    synchronize(torch.device("cuda", 1))
    synchronize(torch.device("mps"))
    assert calls == [("cuda", torch.device("cuda", 1)), ("mps", None)]


def draws() -> tuple[float, np.ndarray, torch.Tensor]:
    """One draw from each generator set_seed seeds: Python's, NumPy's and PyTorch's."""
    return random.random(), np.random.rand(3), torch.rand(3)


def test_set_seed_repeats_python_numpy_and_torch_draws():
    set_seed(7)
    first = draws()
    set_seed(7)
    second = draws()
    assert first[0] == second[0]
    assert np.array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])


def test_different_seeds_give_different_draws_in_every_generator():
    set_seed(7)
    first = draws()
    set_seed(8)
    second = draws()
    assert first[0] != second[0]
    assert not np.array_equal(first[1], second[1])
    assert not torch.equal(first[2], second[2])


def test_set_seed_takes_seeds_beyond_numpy_range():
    set_seed(2**32 + 5)  # NumPy only takes seeds below 2**32; set_seed reduces it
    first = draws()
    set_seed(2**32 + 5)
    assert np.array_equal(first[1], draws()[1])


def test_generator_is_independent_of_global_state():
    expected = torch.rand(4, generator=make_generator(3))
    torch.manual_seed(99)
    torch.rand(10)
    assert torch.equal(torch.rand(4, generator=make_generator(3)), expected)


def test_random_state_lives_here_only():
    homes = {f.__module__ for f in (set_seed, make_generator, get_rng_state, set_rng_state)}
    assert homes == {"helpers.device"}
    random_names = {"set_seed", "make_generator", "get_rng_state", "set_rng_state"}
    assert {name for name in helpers.checkpoint.__all__ if name in random_names} == {"get_rng_state", "set_rng_state"}
    assert helpers.checkpoint.get_rng_state is get_rng_state  # a re-export for 06_save_load, not a second copy


def test_rng_states_round_trip_through_a_file(tmp_path):
    generator = torch.Generator().manual_seed(3)
    random.gauss(0, 1), np.random.randn()  # leave a cached Gaussian in both states
    torch.save(get_rng_state(generator), tmp_path / "rng.pt")

    def draw():
        return (random.random(), random.gauss(0, 1), float(np.random.randn()), torch.rand(3).tolist(),
                torch.randint(100, (3,), generator=generator).tolist())

    first = draw()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), generator)
    assert draw() == first


def test_restoring_a_generator_that_was_not_saved_restores_nothing():
    state = get_rng_state()  # no generator
    torch.rand(3)
    moved = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"^the saved state holds no generator state to restore"):
        set_rng_state(state, torch.Generator())
    assert torch.equal(torch.get_rng_state(), moved)


def test_one_cpu_thread_pins_torch_and_the_blas_pools():
    code = ("import torch, threadpoolctl; from helpers.device import one_cpu_thread; "
            "import sklearn.linear_model; one_cpu_thread(); "
            "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}))")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}  # as on a machine with 2 cores
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["1", "[1]"]
