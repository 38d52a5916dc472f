"""Generated folders that are written whole and replaced without losing anyone's files (05, 07, 08).

A helper that generates a whole folder (the shapes set, a split of your images, a TensorBoard
run) calls :func:`replace_folder`. The folder is written into a new staging folder next to its
place, together with a *marker* file that records the settings it was made with and every
file written, then renamed into place: an interrupted run never leaves half a folder.

An existing folder is replaced only when every file in it is one the helper wrote: listed in
its marker, or named like the files the folder is for (TensorBoard's event files, which the
helper's caller writes after it). A file of yours in it, or a folder without the marker that
holds any other file, is refused with a ``FileExistsError`` that names it: nothing is
deleted that the helper did not write. New folders get 0777 less the umask, as ``mkdir`` gives.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from helpers.atomic import new_sibling

__all__ = ["read_marker", "replace_folder"]


def read_marker(folder: Path, marker: str) -> tuple[dict[str, Any] | None, list[str] | None]:
    """``(settings, files)`` recorded in ``folder/marker``; ``(None, None)`` when there is no readable marker.

    A marker written before the files were listed holds the settings alone: ``files`` is then None.
    """
    try:
        found = json.loads((Path(folder) / marker).read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(found, dict):
        return None, None
    if set(found) == {"settings", "files"}:
        return found["settings"], found["files"]
    return found, None


def _files(folder: Path) -> list[str]:
    """Every file (or link) under ``folder``, as sorted relative POSIX paths."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if not path.is_dir())


def _left_alone(folder: Path, maker: str, why: str) -> FileExistsError:
    return FileExistsError(f"{folder} already exists and was not made by {maker} ({why}), so it is left alone: "
                           "choose another folder, or move or delete this one yourself")


def _refuse_unless_ours(
    folder: Path, marker: str, maker: str, also_ours: tuple[str, ...],
    legacy_files: Callable[[dict[str, Any]], Iterable[str]] | None,
) -> None:
    """Raise ``FileExistsError`` unless ``folder`` is missing, empty, or holds only what ``maker`` wrote."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise _left_alone(folder, maker, "it is not a folder")
    present = [name for name in _files(folder)
               if not any(fnmatch.fnmatch(Path(name).name, pattern) for pattern in also_ours)]
    if not present:  # empty, or only files named like the helper's own (a run's event files)
        return
    settings, listed = read_marker(folder, marker)
    if settings is None:
        raise _left_alone(folder, maker, f"no {marker} in it")
    if listed is None:  # a marker from before the files were listed: the files those settings make
        listed = list(legacy_files(settings)) if legacy_files is not None else []
    foreign = [name for name in present if name not in {marker, *listed}]
    if foreign:
        more = f" and {len(foreign) - 1} more file(s)" if len(foreign) > 1 else ""
        raise FileExistsError(
            f"{folder} holds {foreign[0]}{more} that {maker} did not write, so nothing in it is deleted: "
            "move your files elsewhere, or choose another folder")


def replace_folder(
    folder: Path, marker: str, settings: dict[str, Any], write: Callable[[Path], None], maker: str,
    reuse: bool = True, also_ours: tuple[str, ...] = (),
    legacy_files: Callable[[dict[str, Any]], Iterable[str]] | None = None,
) -> Path:
    """Make ``folder`` with ``write(staging folder)`` and a marker holding ``settings``; return ``folder``.

    With ``reuse``, a folder whose marker holds the same ``settings`` is kept as it is. Otherwise
    an existing folder is replaced only when it holds nothing ``maker`` (the helper's name, for
    messages) did not write; ``also_ours`` are file-name patterns written there after
    ``replace_folder`` returned, and ``legacy_files(settings)`` lists the files of a marker that
    holds settings only. Anything else raises ``FileExistsError`` before a byte is written.
    """
    folder = Path(folder)
    if reuse and read_marker(folder, marker)[0] == settings:
        return folder
    _refuse_unless_ours(folder, marker, maker, also_ours, legacy_files)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = new_sibling(folder, ".partial", os.mkdir)
    try:
        write(staging)
        written = _files(staging)
        (staging / marker).write_text(json.dumps({"settings": settings, "files": written}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)  # empty, or only files we wrote (checked above)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after the rename; left over after an error
    return folder
