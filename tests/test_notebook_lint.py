"""Static checks of every committed notebook (read as JSON, no kernel)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_PARAMETERS = {"SEED", "DEVICE", "SMOKE", "RUNS_DIR"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:4] == ["00_fundamentals", "01_data", "02_model", "03_train"]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def nb(request) -> dict:
    return load(request.param)


def test_kernelspec_is_python3(nb):
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_starts_with_title_and_goals(nb):
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and source(first).startswith("# ")


def test_parameters_cell_is_first_code_cell_and_literal(nb):
    first = code_cells(nb)[0]
    assert "parameters" in first["metadata"].get("tags", []), "first code cell must be tagged parameters"
    tree = ast.parse(source(first))
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"only assignments allowed, got {ast.dump(node)[:60]}"
        ast.literal_eval(node.value)  # raises if not a literal
        names |= {t.id for t in node.targets}
    assert REQUIRED_PARAMETERS <= names, f"missing {REQUIRED_PARAMETERS - names}"
    for line in source(first).splitlines():
        if "=" in line:
            assert "#" in line, f"parameter without a comment: {line}"


def test_validation_cell_follows_parameters(nb):
    second = source(code_cells(nb)[1])
    assert "check_params(" in second and "get_device(DEVICE)" in second


def test_records_headline_numbers(nb):
    assert any("record(" in source(c) and "headline=" in source(c) for c in code_cells(nb))


def test_ends_with_exercises_and_summary(nb):
    markdown = [source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert any(re.search(r"^#+ .*Exercises", m, re.M) for m in markdown[-3:])
    assert any(re.search(r"^#+ .*Summary", m, re.M) for m in markdown[-3:])


def test_committed_outputs_are_clean(nb):
    for cell in code_cells(nb):
        outputs = cell.get("outputs", [])
        assert not any(o["output_type"] == "error" for o in outputs), source(cell)[:80]
        if outputs:
            assert cell["execution_count"] is not None, "outputs without execution_count fail nbval"
    assert any(c.get("outputs") for c in code_cells(nb)), "commit the notebook with its outputs"


def test_no_installs_writes_of_package_or_absolute_paths(nb):
    for cell in code_cells(nb):
        text = source(cell)
        assert not re.search(r"^\s*[!%]+\s*(pip|conda)\s", text, re.M), text[:80]
        assert "%%writefile" not in text
        assert not re.search(r"['\"](/|[A-Za-z]:\\\\)(home|root|tmp|Users|work|usr)\b", text), text[:80]
        assert "sys.path" not in text, "helpers is installed; do not edit sys.path"


def test_cells_are_short(nb):
    for cell in code_cells(nb):
        assert len(source(cell).splitlines()) <= 25, f"cell too long:\n{source(cell)[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """papermill parses the parameters cell itself; a comment with a second '=' hides a name from it."""
    import papermill

    first = code_cells(load(path))[0]
    names = {t.id for node in ast.parse(source(first)).body for t in node.targets}
    assert set(papermill.inspect_notebook(str(path))) == names


def test_outputs_show_no_machine_paths(nb):
    """Committed outputs print paths relative to the project (helpers.paths.display_path), not this machine's."""
    for cell in code_cells(nb):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"/(home|root|tmp|work|Users|usr|opt|var|private)/", text), text[:200]


def test_outputs_have_no_progress_bar_fragments(nb):
    """A bar redrawn with carriage returns leaves one cut-off fragment per redraw in a saved notebook."""
    for cell in code_cells(nb):
        for output in cell.get("outputs", []):
            assert "\r" not in "".join(output.get("text", "")), "".join(output.get("text", ""))[:200]


SOLUTIONS = sorted((Path(__file__).resolve().parent.parent / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
TRAINS = re.compile(r"\b(fit|train_step|train_one_epoch|train_models|compare_models|train_and_evaluate|execute)\(")
# A trained loss or accuracy as printed: three or more decimals, or a percentage with decimals (not a
# number glued to a name, as in a run name "lr0.003").
TRAINED_NUMBER = re.compile(r"(?<![A-Za-z_])\d+\.\d{3,}|(?<![A-Za-z_])\d+\.\d+ ?%")
EXACT = "# exact by construction"  # a checked cell after training whose decimals do not come from training


def checked_outputs_after_training(nb: dict) -> list[str]:
    """The output text of ``# NBVAL_CHECK_OUTPUT`` cells that come after the first cell that trains and
    print something that looks like a trained number."""
    found, trained = [], False
    for cell in code_cells(nb):
        text = source(cell)
        if trained and text.lstrip().startswith("# NBVAL_CHECK_OUTPUT") and EXACT not in text:
            shown = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                            for o in cell.get("outputs", []))
            if TRAINED_NUMBER.search(shown):
                found.append(text.splitlines()[1] if len(text.splitlines()) > 1 else text)
        trained = trained or bool(TRAINS.search(text))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.stem)
def test_nbval_never_compares_a_trained_number(path):
    """Another CPU, or a GPU, trains to other last digits: nbval may compare only outputs that are the same on
    every machine, so no checked cell after training may print a trained-looking number."""
    assert checked_outputs_after_training(load(path)) == [], (
        "remove # NBVAL_CHECK_OUTPUT from these cells, or, if their numbers do not come from training "
        f"(hand-made labels, a message), add the comment {EXACT!r} to the cell")


def test_the_trained_number_check_catches_a_printed_accuracy():
    def cell(src, text):
        return {"cell_type": "code", "source": src, "outputs": [{"output_type": "stream", "text": text}]}
    nb = {"cells": [cell("print(shape)", "0.1234"), cell("history = fit(model)", ""),
                    cell("# NBVAL_CHECK_OUTPUT\nprint(acc)", "accuracy 96.94%"),
                    cell("# NBVAL_CHECK_OUTPUT\nprint(n)", "359 test images"),
                    cell("# NBVAL_CHECK_OUTPUT\nprint(name)", "tinyvgg-lr0.003-seed42"),
                    cell(f"# NBVAL_CHECK_OUTPUT\n{EXACT}: toy labels\nprint(toy)", "accuracy 0.800")]}
    assert checked_outputs_after_training(nb) == ["print(acc)"]
