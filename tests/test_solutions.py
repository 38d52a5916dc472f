"""The worked solutions: one notebook per numbered notebook, every exercise restated and answered.

nbval executes each solutions notebook in ``make test`` (``testpaths`` includes ``notebooks``), so a
solution that stops working fails the suite. These checks read the notebooks as JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = ROOT / "notebooks" / "solutions"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell: dict) -> str:
    return "".join(cell["source"])


def squash(words: str) -> str:
    """Markdown without formatting marks and with single spaces, for comparing restated text."""
    return " ".join(re.sub(r"[`*>_]", "", words).split())


def exercises(notebook: Path) -> dict[int, str]:
    """Exercise number -> its text, from the notebook's ``## Exercises`` list."""
    cell = next((text(c) for c in load(notebook)["cells"]
                 if c["cell_type"] == "markdown" and "## Exercises" in text(c)), None)
    assert cell is not None, f"{notebook.name} has no ## Exercises cell"
    listed = cell.split("## Exercises", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"(?m)^(\d+)\. ", listed)[1:]
    return {int(number): squash(body) for number, body in zip(items[::2], items[1::2], strict=True)}


def solution_path(notebook: Path) -> Path:
    return SOLUTIONS / f"{notebook.stem}_solutions.ipynb"


def answered(solutions: dict) -> dict[int, str]:
    """Exercise number -> the restated text, from the solutions' ``## Exercise N`` cells."""
    found = {}
    for cell in solutions["cells"]:
        match = re.match(r"## Exercise (\d+)\s*\n", text(cell)) if cell["cell_type"] == "markdown" else None
        if match:
            found[int(match.group(1))] = squash(text(cell)[match.end():])
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_is_restated_and_answered(notebook):
    path = solution_path(notebook)
    assert path.exists(), f"missing {path.relative_to(ROOT)}"
    asked, solutions = exercises(notebook), load(path)
    restated = answered(solutions)
    assert sorted(restated) == sorted(asked), f"{path.name} answers {sorted(restated)}, the notebook {sorted(asked)}"
    for number, question in asked.items():
        assert question[:80] in restated[number], f"exercise {number} of {notebook.name} is not restated word for word"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_answer_has_code_with_output_and_a_sentence_on_it(notebook):
    cells = load(solution_path(notebook))["cells"]
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and text(c).startswith("## Exercise ")]
    for start, end in zip(starts, [*starts[1:], len(cells)], strict=True):
        part = cells[start + 1:end]
        code = [c for c in part if c["cell_type"] == "code"]
        assert code, f"{text(cells[start]).splitlines()[0]}: no code"
        assert any(c.get("outputs") for c in code), f"{text(cells[start]).splitlines()[0]}: no output"
        last_code = max(i for i, c in enumerate(part) if c["cell_type"] == "code")
        assert any(c["cell_type"] == "markdown" and text(c).strip() for c in part[last_code + 1:]), (
            f"{text(cells[start]).splitlines()[0]}: no sentence after the last output saying what it shows")


SOLUTION_FILES = sorted(SOLUTIONS.glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=lambda p: p.stem)
def test_solutions_are_clean_committed_runs(path):
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert not re.search(r"^\s*[!%]pip", text(cell), re.M), "no package installs"
        assert len(text(cell).splitlines()) <= 25, f"cell too long: {text(cell)[:60]}"
        assert cell.get("execution_count") or not cell.get("outputs"), "outputs without an execution count"
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"committed error: {output.get('ename')}"
            shown = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert "\r" not in shown, "progress-bar fragments"
            assert not re.search(r"/(home|root|tmp|work|Users|usr|opt|var|private)/", shown), shown[:200]


def test_no_solutions_for_notebooks_that_do_not_exist():
    expected = {solution_path(n).name for n in NOTEBOOKS}
    assert {p.name for p in SOLUTION_FILES} <= expected
