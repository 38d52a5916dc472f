"""Saving and loading weights and training checkpoints safely (introduced in 06_save_load).

Every file is read with ``torch.load(..., weights_only=True)``: only tensors
and plain Python values are accepted, so a file cannot run code while it is
loaded. Every file is written atomically: to a temporary file in the same
folder, flushed to disk, then renamed over the old one, so a save that fails
part-way leaves the previous file as it was.

A checkpoint is a dict of plain values and state dicts: ``model``,
``optimizer``, ``epoch``, ``config``, ``history`` and ``rng`` (the random
number generators' states, including the training loader's shuffling
generator), enough to resume training to the identical result on the CPU.
"""

from __future__ import annotations

import copy
import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers.engine import EpochHook

__all__ = [
    "CHECKPOINT_KEYS", "CheckpointError", "CheckpointMismatchError", "CheckpointNotFoundError",
    "CorruptCheckpointError", "UnsafeCheckpointError", "atomic_save", "checkpoint_hook",
    "get_rng_state", "load_checkpoint", "load_weights", "restore_checkpoint", "safe_load",
    "save_checkpoint", "save_weights", "set_rng_state",
]

CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "config", "history", "rng")
MapLocation = str | torch.device | None


class CheckpointError(Exception):
    """A weights or checkpoint file cannot be saved or used; the message says why and what to do."""


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


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, flush it to disk, then rename it to ``path``.

    If anything fails before the rename, the temporary file is removed and an
    existing ``path`` is untouched (``os.replace`` swaps the file in one step).
    """
    path = Path(path)
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False) as file:
            temporary = Path(file.name)
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them official
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise CheckpointError(
            f"could not save {path} ({error.strerror or error}); any earlier file there is unchanged: "
            "check that the folder exists, is writable and has free space (RUNS_DIR)"
        ) from error
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return path


def safe_load(path: str | Path, map_location: MapLocation = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear :class:`CheckpointError` per problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no checkpoint at {path}: check the path, or run the training cells first to create it"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found or "add_safe_globals" in str(error):
            what = f"the Python object {found.group(1)}" if found else "Python objects"
            raise UnsafeCheckpointError(
                f"refused to load {path}: it refers to {what}, and loading it "
                "could run code. Only tensors and plain values are accepted: save model.state_dict() "
                "instead of the whole model; use weights_only=False only for a file you made yourself"
            ) from None
        raise _corrupt(path, error) from None
    except Exception as error:  # garbage makes the unpickler fail in many ways (EOFError, IndexError, ...)
        raise _corrupt(path, error) from None


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


def get_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """States of torch's CPU and CUDA generators, Python's ``random``, NumPy's, and ``generator``.

    Python's and NumPy's states become plain lists and numbers, so
    ``torch.load(weights_only=True)`` reads them back.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [str(name), keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "generator": None if generator is None else generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back the states saved by :func:`get_rng_state` (tensors may have been mapped to any device)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if generator is not None:
        if state["generator"] is None:
            raise CheckpointError("the checkpoint has no data loader generator state to restore")
        generator.set_state(state["generator"].cpu())


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
    config: dict[str, Any], history: list[dict[str, float]], generator: torch.Generator | None = None,
) -> Path:
    """Save everything needed to resume after ``epoch`` atomically; ``generator`` is the loader's."""
    checkpoint = {
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": int(epoch),
        "config": dict(config),
        "history": [dict(metrics) for metrics in history],
        "rng": get_rng_state(generator),
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

    ``checkpoint`` is left unchanged, so it can be restored again.
    """
    _load_state(model, checkpoint["model"], "the checkpoint")
    if optimizer is not None:  # a copy: the optimizer would otherwise update the checkpoint's tensors
        optimizer.load_state_dict(copy.deepcopy(checkpoint["optimizer"]))
    set_rng_state(checkpoint["rng"], generator)
    return checkpoint["epoch"] + 1


def checkpoint_hook(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any],
    history: list[dict[str, float]] | None = None, generator: torch.Generator | None = None,
) -> EpochHook:
    """An ``on_epoch_end`` hook for ``fit`` that saves a checkpoint after every epoch.

    ``history`` holds the epochs before this ``fit`` call (when resuming); the
    hook appends each new epoch to its own copy and saves the whole list.
    """
    full_history = list(history or [])

    def save(epoch: int, metrics: dict[str, float]) -> None:
        full_history.append(dict(metrics))
        save_checkpoint(path, model, optimizer, epoch, config, full_history, generator)

    return save
