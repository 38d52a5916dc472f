"""Choosing a device, waiting for it, and the random number generators (introduced in 00_fundamentals).

The one home of random state: seeding (:func:`set_seed`, :func:`make_generator`, 00) and
saving and restoring every generator's state for an exact resume (:func:`get_rng_state`,
:func:`set_rng_state`, 06; :mod:`helpers.checkpoint` saves them in each checkpoint).
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch

from helpers.params import ParameterError

__all__ = [
    "DEVICE_CHOICES", "available_devices", "get_device", "get_rng_state", "make_generator", "one_cpu_thread",
    "set_rng_state", "set_seed", "synchronize",
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


def get_rng_state(
    generator: torch.Generator | None = None, device: str | torch.device | None = None
) -> dict[str, Any]:
    """States of torch's CPU generator, the CUDA generator in use, Python's ``random``, NumPy's, and ``generator``.

    ``"cuda"`` maps a CUDA device index to its generator's state. Only the
    device that draws the random numbers is recorded: ``device`` when given
    (nothing for ``"cpu"`` or ``"mps"``); without it, the current CUDA device
    if CUDA is already in use. CUDA is never started just to save its state.
    Python's and NumPy's states become plain lists and numbers, so
    ``torch.load(weights_only=True)`` reads them back.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    if device is not None:
        device = torch.device(device)
    elif torch.cuda.is_initialized():  # without a device: the current CUDA device, if CUDA is in use
        device = torch.device("cuda")
    cuda = {}
    if device is not None and device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        cuda = {index: torch.cuda.get_rng_state(index)}
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "python": [version, list(internal), gauss],
        "numpy": [str(name), keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "generator": None if generator is None else generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back the states saved by :func:`get_rng_state` (tensors may have been mapped to any device).

    A CUDA state for a device this machine lacks is skipped with a warning:
    training goes on, but its random draws on the GPU differ from the original run.
    Asked for a ``generator`` that was not saved, it raises ``ValueError`` and restores nothing.
    """
    if generator is not None and state["generator"] is None:
        raise ValueError("the saved state holds no generator state to restore: it was saved without one")
    torch.set_rng_state(state["torch"].cpu())
    cuda = state["cuda"]
    if isinstance(cuda, list):  # checkpoints before the device index was recorded: one state per GPU
        cuda = dict(enumerate(cuda))
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for index, cuda_state in cuda.items():
        if index < count:
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
        else:
            warnings.warn(
                f"the checkpoint holds the random state of cuda:{index}, and this machine has {count} CUDA "
                "device(s): it is not restored, so random draws on the GPU (dropout) differ from the original "
                "run and the resume is not bit-identical", stacklevel=2,
            )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if generator is not None:
        generator.set_state(state["generator"].cpu())


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
