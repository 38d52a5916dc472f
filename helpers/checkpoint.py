"""Saving and loading weights and training checkpoints safely (introduced in 06_save_load).

Every file is read with ``torch.load(..., weights_only=True)``: only tensors
and plain Python values are accepted, so a file cannot run code while it is
loaded. Every file is written atomically by :mod:`helpers.atomic`, so a save that
fails part-way leaves the previous file as it was (a :class:`~helpers.atomic.SaveError`).

A checkpoint is a dict of plain values and state dicts: ``model``,
``optimizer``, ``epoch``, ``config``, ``history`` and ``rng`` (the random
number generators' states, including the training loader's shuffling
generator and the CUDA device's), enough to resume training to the identical
result. ``atomic_save`` and ``save_json`` are :mod:`helpers.atomic`'s, ``get_rng_state`` and
``set_rng_state`` :mod:`helpers.device`'s (the home of random state); all four are importable
from here as 06_save_load and 10_going_further's solutions import them.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helpers.atomic import SaveError, atomic_save, save_json
from helpers.device import get_rng_state, set_rng_state

__all__ = [
    "CHECKPOINT_KEYS", "CheckpointError", "CheckpointMismatchError", "CheckpointNotFoundError",
    "CorruptCheckpointError", "SaveError", "UnsafeCheckpointError", "atomic_save", "checkpoint_hook",
    "get_rng_state", "load_checkpoint", "load_weights", "restore_checkpoint", "safe_load",
    "save_checkpoint", "save_json", "save_weights", "set_rng_state",
]

CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "config", "history", "rng")
MapLocation = str | torch.device | None
Device = str | torch.device | None


class CheckpointError(Exception):
    """A weights or checkpoint file cannot be read or used; the message says why and what to do.

    A save that fails raises :class:`~helpers.atomic.SaveError` instead.
    """


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The file does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a complete file written by ``torch.save`` (truncated, damaged, or something else)."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds Python objects that would run code when loaded (a pickled model, or worse)."""


class CheckpointMismatchError(CheckpointError):
    """The saved weights do not fit the model they are loaded into (a different architecture)."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a ``torch.compile`` or ``DistributedDataParallel`` wrapper."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


class _SavedOnMissingDevice(Exception):
    """Raised by :func:`_where_saved` for a tensor saved on a GPU this machine does not have."""


def _is_missing(location: str | torch.device) -> bool:
    """Whether ``location`` (``"cuda:1"``, ``"mps"``, a ``torch.device``) is a GPU this machine lacks."""
    device = torch.device(location) if str(location).startswith(("cuda", "mps")) else None
    if device is None:
        return False
    if device.type == "mps":
        return not torch.backends.mps.is_available()
    return not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()


def _where_saved(storage: Any, location: str) -> None:
    """``map_location=None``: keep every tensor where it was saved, after checking that the device exists.

    torch would raise a plain RuntimeError, told apart from a damaged file only by its text.
    """
    if _is_missing(location):
        raise _SavedOnMissingDevice(location)
    return None  # torch then restores it on the device it was saved from


def safe_load(path: str | Path, map_location: MapLocation = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear :class:`CheckpointError` per problem."""
    path = Path(path)
    try:
        file = open(path, "rb") if path.is_file() else None  # closed by the with below
    except OSError as error:  # a PermissionError, most often
        raise CheckpointError(
            f"cannot read {path} ({error.strerror or error}): check the file's permissions, "
            "or copy it to a folder of yours"
        ) from None
    if file is None:
        raise CheckpointNotFoundError(
            f"no checkpoint at {path}: check the path, or run the training cells first to create it"
        )
    with file:
        if map_location is not None and _is_missing(map_location):
            raise CheckpointError(
                f'cannot load {path.name} to map_location={str(map_location)!r}: this machine has no such '
                'device; pass map_location="cpu"'
            )
        try:
            return torch.load(file, map_location=_where_saved if map_location is None else map_location,
                              weights_only=True)
        except _SavedOnMissingDevice as error:
            raise CheckpointError(
                f"{path} was saved from a GPU ({error}) that this machine does not have: "
                'pass map_location="cpu" (the default), or load it on a machine with that GPU'
            ) from None
        except pickle.UnpicklingError as error:
            raise _refused(path, error) from None
        except MemoryError:
            raise CheckpointError(
                f"not enough memory to load {path} ({path.stat().st_size / 2**20:.1f} MiB on disk): close other "
                "notebooks or programs, or load it on a machine with more memory"
            ) from None
        except OSError as error:  # the file was found and opened, then reading it failed
            raise CheckpointError(
                f"could not read {path} ({error.strerror or error}): the disk or network folder failed while "
                "reading it; check that it is still there and try again"
            ) from None
        except Exception as error:  # garbage makes the unpickler fail in many ways (EOFError, IndexError, ...)
            raise _corrupt(path, error) from None


def _refused(path: Path, error: Exception) -> CheckpointError:
    """The unpickler refused ``path``: unsafe if it names code to run, else damaged (decided by reading it)."""
    try:
        unsafe = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip file from torch.save: damaged (files from torch < 1.6 cannot be checked)
        unsafe = []
    if not unsafe:
        return _corrupt(path, error)
    what = ", ".join(unsafe[:3]) + (f" and {len(unsafe) - 3} more" if len(unsafe) > 3 else "")
    return UnsafeCheckpointError(
        f"refused to load {path}: it refers to the Python object{'s' * (len(unsafe) > 1)} {what}, and loading "
        "it could run code. Only tensors and plain values are accepted: save model.state_dict() instead of "
        "the whole model; use weights_only=False only for a file you made yourself"
    )


def _corrupt(path: Path, error: Exception) -> CorruptCheckpointError:
    reason = str(error).split(".")[0].strip() or type(error).__name__
    return CorruptCheckpointError(
        f"{path} is damaged or not a PyTorch file ({reason[:80]}): save it again, "
        "or use an earlier copy"
    )


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` (the weights only) atomically."""
    return atomic_save(_unwrap(model).state_dict(), path)


def load_weights(model: nn.Module, path: str | Path, map_location: MapLocation = "cpu") -> nn.Module:
    """Load a file from :func:`save_weights` (or a checkpoint's weights) into ``model``; returns ``model``."""
    state = safe_load(path, map_location)
    if isinstance(state, dict) and set(CHECKPOINT_KEYS) <= set(state):
        state = state["model"]
    _load_state(model, state, path)
    return model


def _load_state(model: nn.Module, state: Any, path: str | Path) -> None:
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"{path} does not hold a model's state_dict (a dict of tensors)")
    try:
        _unwrap(model).load_state_dict(state)
    except RuntimeError as error:
        problems = [line.strip() for line in str(error).splitlines()[1:]]
        details = problems[0][:160] + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
        raise CheckpointMismatchError(
            f"the weights in {Path(path).name} do not fit this {type(_unwrap(model)).__name__} ({details}): "
            "build the model with the same architecture and sizes as when it was saved "
            "(a checkpoint's 'config' records them)"
        ) from None


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
    config: dict[str, Any], history: list[dict[str, float]], generator: torch.Generator | None = None,
    device: Device = None,
) -> Path:
    """Save everything needed to resume after ``epoch`` atomically; ``generator`` is the loader's.

    ``device`` is the one training runs on: its CUDA random state is saved (see
    :func:`get_rng_state`). ``config`` and ``history`` must hold plain values
    only; anything else (a ``Path``, a NumPy number) is refused before writing.
    """
    checkpoint = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": int(epoch),
        "config": dict(config),
        "history": [dict(metrics) for metrics in history],
        "rng": get_rng_state(generator, device),
    }
    return atomic_save(checkpoint, path)


def load_checkpoint(path: str | Path, map_location: MapLocation = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (safely, with ``weights_only=True``)."""
    checkpoint = safe_load(path, map_location)
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{path} is not a training checkpoint (missing {', '.join(missing)}): for a weights-only "
            "file use load_weights, or save one with save_checkpoint"
        )
    return checkpoint


def restore_checkpoint(
    checkpoint: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Load model, optimizer and random states from ``checkpoint``; return the epoch to start from.

    ``checkpoint`` is left unchanged, so it can be restored again. Asked for a loader
    ``generator`` that the checkpoint did not save, it restores nothing.
    """
    if generator is not None and checkpoint["rng"]["generator"] is None:
        raise CheckpointError("the checkpoint has no data loader generator state to restore")
    _load_state(model, checkpoint["model"], "the checkpoint")
    if optimizer is not None:  # a copy: the optimizer would otherwise update the checkpoint's tensors
        optimizer.load_state_dict(copy.deepcopy(checkpoint["optimizer"]))
    set_rng_state(checkpoint["rng"], generator)
    return checkpoint["epoch"] + 1


def checkpoint_hook(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any],
    history: list[dict[str, float]] | None = None, generator: torch.Generator | None = None,
    device: Device = None,
) -> Callable[[int, dict[str, float]], None]:
    """An ``on_epoch_end`` hook for ``fit`` that saves a checkpoint after every epoch.

    ``history`` holds the epochs before this ``fit`` call (when resuming); the
    hook appends each new epoch to its own copy and saves the whole list.
    """
    full_history = list(history or [])

    def save(epoch: int, metrics: dict[str, float]) -> None:
        full_history.append(dict(metrics))
        save_checkpoint(path, model, optimizer, epoch, config, full_history, generator, device)

    return save
