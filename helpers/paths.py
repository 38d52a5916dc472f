"""Where data and run artifacts go (00_fundamentals onwards).

In a copy of the course, artifacts never go next to the notebooks: by default they go to ``runs/`` and
``data/`` in the project folder. A relative ``RUNS_DIR`` or ``DATA_DIR`` is taken
from the project folder too, so it means the same folder whether the notebook runs
in JupyterLab, under ``make run`` or papermill, whatever the kernel's working folder.

The environment variables ``COURSE_RUNS_DIR`` and ``COURSE_DATA_DIR``, when set, replace
``runs/`` and ``data/`` as the defaults (the test suite points them at a temporary folder, so
it never touches a learner's runs and data).

The project folder is the one holding this package when it is installed with
``pip install -e .`` (as ``make setup`` does); otherwise the nearest folder, from the
current one upwards, that holds the course (``pyproject.toml`` and ``notebooks/``).
Outside a copy of the course (the package installed with ``pip install .`` or from a
wheel, a notebook copied anywhere or opened in a hosted Jupyter) it is the current
folder when first asked, the notebook's folder in Jupyter: ``runs/`` and ``data/`` go there.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

__all__ = ["PROJECT_ROOT", "data_dir", "display_path", "prepare_dir", "project_root", "runs_dir"]  # noqa: F822 (PROJECT_ROOT: module __getattr__)

_PROJECT_NAME = 'name = "pytorch-workflow-notebooks"'


def _is_project(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    try:
        return (folder / "notebooks").is_dir() and _PROJECT_NAME in pyproject.read_text(encoding="utf-8")
    except OSError:
        return False


@cache
def project_root() -> Path:
    """The course's folder, or the current folder outside a copy of the course (see the module docstring)."""
    here = Path(__file__).resolve().parent.parent
    cwd = Path.cwd().resolve()
    for folder in (here, cwd, *cwd.parents):
        if _is_project(folder):
            return folder
    return cwd


def __getattr__(name: str) -> Path:
    if name == "PROJECT_ROOT":  # looked up when first used, so importing this module never fails
        return project_root()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RUNS_ENV, DATA_ENV = "COURSE_RUNS_DIR", "COURSE_DATA_DIR"


def _default(variable: str, folder: str) -> Path:
    """The folder named by environment ``variable`` if set, else ``<project>/<folder>``."""
    named = os.environ.get(variable, "")
    return Path(named).expanduser().resolve() if named else project_root() / folder


def _resolve(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else (base or project_root()) / path).resolve()


def runs_dir(value: str, notebook: str, base: Path | None = None) -> Path:
    """The folder for one notebook's artifacts: ``value`` if given, else ``<project>/runs/<notebook>``
    (``$COURSE_RUNS_DIR/<notebook>`` when that is set).

    A relative ``value`` is taken from ``base``: the project folder unless given (the command-line
    scripts pass the current folder, as a shell user expects).
    """
    return _resolve(value, base) if value else _default(RUNS_ENV, "runs") / notebook


def data_dir(value: str = "", base: Path | None = None) -> Path:
    """The folder for downloaded and generated data: ``value`` if given, else ``<project>/data``
    (``$COURSE_DATA_DIR`` when that is set).

    A relative ``value`` is taken from ``base``, the project folder unless given.
    """
    return _resolve(value, base) if value else _default(DATA_ENV, "data")


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
    root = project_root()
    if path.is_relative_to(root):
        return str(path.relative_to(root))
    home = Path.home()
    return str(Path("~") / path.relative_to(home)) if path.is_relative_to(home) else str(path)
