"""Run a notebook with papermill for the tests and read back what it recorded."""

from __future__ import annotations

import ast
import contextlib
import itertools
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
    tmp_path.mkdir(parents=True, exist_ok=True)
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


# The suite's rerun of each notebook: another seed set, so a claim that holds only for the committed seeds
# fails here. ``make notebooks`` measures the spread on other offsets (helpers.series.SPREAD_OFFSETS).
PERTURBED_OFFSET = 1000
# How far a rerun's number may sit from the mean of the measured runs, in their standard deviations. With six
# runs the standard deviation is itself uncertain (t with 5 degrees of freedom); 6 leaves about 1 in 500 per
# number to chance on a machine whose differences act like a change of seed.
SPREAD_WIDTH = 6.0


def committed_records(name: str) -> dict[str, Any]:
    """What the committed notebook recorded (its default run), read from the file."""
    return read_records(notebook_path(name))


def default_parameter(name: str, parameter: str) -> Any:
    """The value of ``parameter`` in notebook ``name``'s parameters cell."""
    from helpers.series import default_parameters

    return default_parameters(notebook_path(name))[parameter]


def perturbed_seed(name: str) -> int:
    return default_parameter(name, "SEED") + PERTURBED_OFFSET


def execute_perturbed(name: str, tmp_path: Path, **parameters: Any) -> dict[str, Any]:
    """Execute ``name`` like a learner, on the CPU, with ``SEED`` moved by ``PERTURBED_OFFSET``."""
    return execute_like_a_learner(name, tmp_path, SEED=perturbed_seed(name), DEVICE="cpu", **parameters)


def spread(name: str) -> dict[str, list[float]]:
    """Each number's values over the committed run and the seed reruns of ``make notebooks``."""
    metadata = json.loads(notebook_path(name).read_text(encoding="utf-8"))["metadata"]
    measured = metadata.get("course", {}).get("spread")
    if not measured:
        pytest.fail(f"{name} has no measured spread in its metadata: run make notebooks ARGS='--only {name[:2]}'")
    committed = committed_records(name)
    return {key: [committed[key], *values] for key, values in measured["values"].items() if key in committed}


def assert_within_spread(name: str, records: dict[str, Any], keys: Iterable[str], floor: float = 0.0) -> None:
    """Each of ``keys`` in ``records`` lies within ``SPREAD_WIDTH`` standard deviations of its measured mean.

    ``floor`` widens every band by a fixed amount (say one test image, ``1 / 359``) for numbers that did not
    move between seeds here but can move on other hardware.
    """
    import statistics

    measured = spread(name)
    for key in keys:
        values = measured[key]
        mean, std = statistics.fmean(values), statistics.stdev(values)
        band = SPREAD_WIDTH * std + floor
        assert abs(records[key] - mean) <= band, (
            f"{name}: {key} = {records[key]:.6g}, outside {mean:.6g} ± {band:.3g} "
            f"(the spread of {len(values)} runs: {', '.join(f'{v:.4g}' for v in values)})")


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


def claim_records(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    """For a fixture parametrised over ``["committed", "perturbed"]``: the committed notebook's records, or
    those of the module's ``perturbed`` fixture. Every prose claim is asserted on both."""
    if request.param == "committed":
        return committed_records(name)
    return request.getfixturevalue("perturbed")[0]


def run_validation_cell(name: str, whole: bool = False, **overrides: Any) -> None:
    """Run notebook ``name``'s validation cell in this process, without a kernel, on its default parameters
    changed by ``overrides``: every check of a bad value, for the cases that need no papermill run.

    Runs the cell up to the line that sets the thread count or makes the run folder (so nothing is written),
    or, with ``whole``, every line but the thread count's. Magics (``%matplotlib``) are left out.
    """
    from helpers.series import default_parameters

    cells = json.loads(notebook_path(name).read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    cell = next(source for source in sources if "check_params(" in source)
    tree = ast.parse("\n".join(line for line in cell.splitlines() if not line.lstrip().startswith("%")))
    if whole:
        body = [node for node in tree.body if "one_cpu_thread()" not in ast.unparse(node)]
    else:
        body = list(itertools.takewhile(
            lambda node: not any(call in ast.unparse(node) for call in ("one_cpu_thread()", "prepare_dir(")),
            tree.body))
    namespace = {**default_parameters(notebook_path(name)), **overrides}
    exec(compile(ast.Module(body=body, type_ignores=[]), name, "exec"), namespace)


def printed(notebook: str | Path) -> str:
    """Everything an executed notebook printed (its stream outputs), in order."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))


def claim_text(request: pytest.FixtureRequest, name: str) -> str:
    """For a fixture parametrised over ``["committed", "perturbed"]``: what the committed notebook printed, or
    what the module's ``perturbed`` run (records, folder) printed."""
    if request.param == "committed":
        return printed(notebook_path(name))
    return printed(request.getfixturevalue("perturbed")[1] / f"{name}.out.ipynb")
