"""Run a notebook with papermill for the tests and read back what it recorded."""

from __future__ import annotations

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
