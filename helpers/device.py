"""Choosing a device, waiting for it, and seeding random number generators (introduced in 00_fundamentals)."""

from __future__ import annotations

import random

import numpy as np
import torch

from helpers.params import ParameterError

__all__ = [
    "DEVICE_CHOICES", "available_devices", "get_device", "make_generator", "one_cpu_thread", "set_seed", "synchronize",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the device types usable on this machine, best first."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def get_device(name: str = "auto") -> torch.device:
    """Resolve ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` to a usable device.

    ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. A device that is not
    available raises :class:`ParameterError` naming what is available.

    >>> get_device("cpu")
    device(type='cpu')
    """
    if not isinstance(name, str):
        raise ParameterError(
            f"DEVICE = {name!r} is not allowed: give one of {', '.join(map(repr, DEVICE_CHOICES))}."
        )
    if name == "auto":
        return torch.device(available_devices()[0])
    kind, _, index = name.partition(":")
    if kind not in DEVICE_CHOICES or (index and not index.isdigit()):
        raise ParameterError(
            f"DEVICE = {name!r} is not allowed: give one of {', '.join(map(repr, DEVICE_CHOICES))}"
            " (or 'cuda:N' for GPU number N)."
        )
    usable = available_devices()
    if kind not in usable:
        raise ParameterError(
            f"DEVICE = {name!r} is not available on this machine: available here are "
            f"{', '.join(map(repr, usable))}. Use DEVICE = 'auto' to pick the best one."
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ParameterError(
            f"DEVICE = {name!r} is not available: this machine has {torch.cuda.device_count()} "
            "CUDA device(s), numbered from 0."
        )
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``, for splits, shuffling and sampling."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work; a no-op on the CPU.

    CUDA and MPS run asynchronously: a call returns before the GPU has done the work, so a
    clock read straight after it measures only the queueing. Call this before reading a clock.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def one_cpu_thread() -> None:
    """Run PyTorch and the maths libraries behind NumPy and scikit-learn on one CPU thread (00 onwards).

    Several threads split a sum into parts and add the parts in an order that depends on how
    many threads there are; floating-point addition is not associative, so the last digits, and
    after many training steps the results, would change with the machine's number of cores. On one
    thread, a rerun on the same machine with the same library versions gives the same numbers.
    Another CPU can still differ: the libraries pick their kernels by CPU vendor, instruction set
    and cache sizes. The small models of this course lose little speed by it. GPU work is not
    affected.
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # OpenMP and BLAS pools (NumPy, SciPy, scikit-learn), for the whole process
