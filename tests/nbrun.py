"""Run a notebook with papermill for the tests and read back what it recorded."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import papermill
import pytest

from helpers.records import read_records

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_path(name: str) -> Path:
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"{path} does not exist")
    return path


def execute(name: str, tmp_path: Path, **parameters: Any) -> dict[str, Any]:
    """Execute ``notebooks/<name>.ipynb`` with ``parameters`` (RUNS_DIR and DATA_DIR in ``tmp_path``).

    Returns the recorded values. DATA_DIR defaults to ``tmp_path/data`` so tests
    never touch the user's data folder.
    """
    output = tmp_path / f"{name}.out.ipynb"
    params = {"RUNS_DIR": str(tmp_path / "runs"), **parameters}
    if "DATA_DIR" in _parameter_names(name) and "DATA_DIR" not in params:
        params["DATA_DIR"] = str(tmp_path / "data")
    papermill.execute_notebook(
        str(notebook_path(name)), str(output), parameters=params, kernel_name="python3",
        cwd=str(NOTEBOOKS), progress_bar=False, execution_timeout=600,
    )
    return read_records(output)


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def default_threads() -> Iterator[None]:
    """Kernels started meanwhile run at the machine's default thread count, as in a learner's JupyterLab.

    ``make test`` sets ``OMP_NUM_THREADS=1`` for its workers; a learner's kernel has no such setting.
    """
    saved = {name: os.environ.pop(name, None) for name in THREAD_VARS}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


def execute_like_a_learner(name: str, tmp_path: Path, **parameters: Any) -> dict[str, Any]:
    """Execute ``name`` at its defaults (plus ``parameters``) at the machine's default thread count."""
    with default_threads():
        return execute(name, tmp_path, **parameters)


def committed_cpu(name: str) -> str:
    """The CPU capability PyTorch used for notebook ``name``'s committed outputs (``make notebooks`` writes it)."""
    metadata = json.loads(notebook_path(name).read_text(encoding="utf-8"))["metadata"]
    return metadata.get("course", {}).get("cpu_capability", "")


def assert_reproduces_committed(name: str, records: dict[str, Any], keys: Iterable[str],
                                band: float = 0.02) -> None:
    """``records`` of a default CPU run equal the committed notebook's for ``keys``.

    Exactly when this CPU has the capability the committed run had (PyTorch picks its kernels by
    it: AVX2, AVX-512, ...); within ``band`` otherwise, since other kernels round differently.
    """
    import torch

    committed = read_records(notebook_path(name))
    same_kernels = torch.backends.cpu.get_cpu_capability() == committed_cpu(name)
    for key in keys:
        if same_kernels:
            assert records[key] == committed[key], f"{name}: {key} = {records[key]!r}, committed {committed[key]!r}"
        else:
            assert records[key] == pytest.approx(committed[key], abs=band), f"{name}: {key}"


def execute_expecting_error(name: str, tmp_path: Path, **parameters: Any) -> str:
    """Execute with bad parameters; return the error text papermill reports (the test checks it)."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        execute(name, tmp_path, **parameters)
    return f"{info.value.ename}: {info.value.evalue}"


def _parameter_names(name: str) -> set[str]:
    import ast
    import json

    cells = json.loads(notebook_path(name).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()
