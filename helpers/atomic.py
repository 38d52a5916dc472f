"""Writing files atomically, with the user's usual permissions (introduced in 06_save_load).

A file is written to a new temporary file in the same folder, flushed to disk, then
renamed over the old one, so a save that fails part-way leaves the previous file as
it was. The value is turned into bytes first, in memory, so a value that cannot be
saved is told apart from a disk that is full or a file-size limit (the OS's own error).
Files and folders are created with modes 0666 and 0777, less the umask, as ``open``
and ``mkdir`` would create them (``tempfile`` would make them private to you).

``atomic_save`` writes what ``torch.load(..., weights_only=True)`` reads back, and
refuses anything else before a byte is written; ``save_json`` writes JSON.
"""

from __future__ import annotations

import collections
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["SaveError", "atomic_save", "new_sibling", "save_json", "write_atomically"]

# What torch.load(weights_only=True) reads back. Exact types: a NumPy float64 is a float subclass, and
# pickles as a NumPy object that the loader refuses.
_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size,
                torch.Tensor, nn.Parameter)
_CONTAINER_TYPES = (dict, collections.OrderedDict, list, tuple, set)


class SaveError(Exception):
    """A file cannot be saved; the message says why and what to do, and any earlier file is unchanged."""


def new_sibling(path: Path, suffix: str, create: Callable[[Path], None]) -> Path:
    """Create a new, unused ``.<name>.<random><suffix>`` next to ``path`` with ``create``; return it.

    ``create`` must fail with ``FileExistsError`` when the name is taken (``os.mkdir`` does),
    so two processes never get the same name.
    """
    while True:
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            create(candidate)
            return candidate
        except FileExistsError:
            continue


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 less the umask, as open() does


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a new file next to ``path``, flush it to disk, then rename it to ``path``.

    An ``OSError`` (a full disk, a file-size limit, a folder that cannot be written) becomes a
    :class:`SaveError` that names the OS's reason; the temporary file is removed and an
    existing ``path`` is untouched (``os.replace`` swaps the file in one step).
    """
    path = Path(path)
    temporary: Path | None = None
    try:
        temporary = new_sibling(path, ".tmp", _create_file)
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them official
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        raise SaveError(
            f"could not save {path} ({error.strerror or error}); any earlier file there is unchanged: check "
            "that the folder exists and is writable, and that the disk has space and allows a file this size"
        ) from error
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
    return path


def _cannot_encode(path: Path, error: Exception, can_hold: str) -> SaveError:
    return SaveError(f"could not save {path} ({type(error).__name__}: {str(error)[:120]}); any earlier file "
                     f"there is unchanged: save only {can_hold}")


def _parts(value: Any, where: str = "", seen: set[int] | None = None) -> Iterator[tuple[str, Any]]:
    """``(key path, value)`` for ``value``, every dict key and everything inside its lists, tuples and dicts."""
    seen = set() if seen is None else seen
    yield where, value
    if type(value) in _CONTAINER_TYPES and id(value) not in seen:  # a list that holds itself is walked once
        seen.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            inner = f"{where}[{key!r}]" if where else (key if isinstance(key, str) else f"[{key!r}]")
            if isinstance(value, dict):
                yield f"a key in {where or 'the dict'}", key
            yield from _parts(item, inner, seen)


def _check_plain(obj: Any, path: Path) -> None:
    """Refuse, before anything is written, a value that ``torch.load(weights_only=True)`` would refuse."""
    try:
        parts = list(_parts(obj))
    except RecursionError:  # pickle would fail on it too
        raise SaveError(f"cannot save {path.name}: its lists or dicts are nested too deeply") from None
    for where, value in parts:
        kind = type(value)
        if kind not in _PLAIN_TYPES + _CONTAINER_TYPES:
            name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            raise SaveError(
                f"cannot save {where or 'the object'} in {path.name}: a {name}, which "
                "torch.load(weights_only=True) would refuse to read back; store a plain value instead "
                "(str(path); float(x) or int(x) for a NumPy number; x.tolist() for an array; a name, not a function)"
            )


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`write_atomically`); returns ``path``.

    ``obj`` may hold only what ``torch.load(weights_only=True)`` reads back: tensors, ``None``,
    numbers, strings, and lists, tuples and dicts of those (state dicts are such dicts).
    Anything else is refused before a byte is written. Every failure is a :class:`SaveError`,
    and an existing ``path`` is then untouched.
    """
    path = Path(path)
    _check_plain(obj, path)
    buffer = io.BytesIO()
    try:
        torch.save(obj, buffer)
    except Exception as error:  # pickle refused part of it, after the check above let it through
        raise _cannot_encode(path, error, "tensors and plain Python values") from error
    return write_atomically(path, buffer.getvalue())


def save_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically, like :func:`atomic_save`; returns ``path``.

    For example ``save_json({"config": config, "history": history}, run_dir / "history.json")``.
    A value json cannot encode raises :class:`SaveError`; an earlier file is then untouched.
    """
    try:
        data = (json.dumps(obj, indent=2) + "\n").encode()
    except (TypeError, ValueError) as error:
        raise _cannot_encode(Path(path), error, "numbers, strings, booleans, None, and lists and dicts of those") \
            from error
    return write_atomically(path, data)
