"""Where data and run artifacts go (00_fundamentals onwards).

Artifacts never go next to the notebooks: by default they go to ``runs/`` and
``data/`` at the project root, wherever the notebook was started from.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["PROJECT_ROOT", "data_dir", "display_path", "prepare_dir", "runs_dir"]


def _find_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


PROJECT_ROOT = _find_root()


def runs_dir(value: str, notebook: str) -> Path:
    """The folder for one notebook's artifacts: ``value`` if given, else ``<project>/runs/<notebook>``.

    A relative ``value`` is taken from the current working directory.
    """
    return Path(value).expanduser().resolve() if value else PROJECT_ROOT / "runs" / notebook


def data_dir(value: str = "") -> Path:
    """The folder for downloaded and generated data: ``value`` if given, else ``<project>/data``."""
    return Path(value).expanduser().resolve() if value else PROJECT_ROOT / "data"


def prepare_dir(path: Path, parameter: str = "RUNS_DIR") -> Path:
    """Create ``path`` if needed and check that files can be written there.

    Raises ``PermissionError`` with one message saying what to change when the
    folder cannot be created or written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise PermissionError(
            f"cannot write to {path} ({error.strerror or error}): set {parameter} to a folder you "
            "can write to, for example ~/pytorch-course-runs"
        ) from None
    return path


def display_path(path: Path) -> str:
    """``path`` for printing: relative to the project folder when inside it, else with ``~`` for home."""
    path = Path(path)
    if path.is_relative_to(PROJECT_ROOT):
        return str(path.relative_to(PROJECT_ROOT))
    home = Path.home()
    return str(Path("~") / path.relative_to(home)) if path.is_relative_to(home) else str(path)
