"""The `make run` runner, on two tiny notebooks in a temporary folder."""

import nbclient
import nbformat
import pytest

from helpers.series import (
    SPREAD_OFFSETS,
    NotebookResult,
    default_parameters,
    format_summary,
    list_notebooks,
    main,
    measure_spread,
    refresh_notebook,
)


def write_notebook(path, body):
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('RUNS_DIR = ""  # artifacts\nSMOKE = False  # tiny run')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def folder(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "00_good.ipynb",
                   "from helpers.records import record\nrecord(headline='acc', acc=0.5 if SMOKE else 0.9)\n"
                   "open(RUNS_DIR + '.txt', 'w').write('x')")
    write_notebook(notebooks / "01_bad.ipynb", "raise RuntimeError('broken on purpose')")
    (notebooks / "README.ipynb").write_text("{}")  # not numbered: not part of the series
    return notebooks


def test_list_notebooks_in_order_and_by_prefix(folder):
    assert [p.name for p in list_notebooks(folder)] == ["00_good.ipynb", "01_bad.ipynb"]
    assert [p.name for p in list_notebooks(folder, ["01"])] == ["01_bad.ipynb"]
    with pytest.raises(SystemExit, match="no notebook .* starts with 07"):
        list_notebooks(folder, ["07"])


@pytest.mark.notebook
def test_series_runs_all_reports_and_names_the_failure(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--notebooks", str(folder), "--out", str(out), "--smoke"]) == 1
    stdout, stderr = capsys.readouterr()
    table = stdout[stdout.index("notebook "):]
    assert "00_good   ok" in table and "acc = 0.5000" in table  # SMOKE=True reached the notebook
    peak_mib = float(table.splitlines()[2].split()[4])
    assert 20 < peak_mib < 2000  # a kernel that imported helpers was measured
    assert "01_bad    FAILED" in table
    assert "FAILED: 01_bad: RuntimeError: broken on purpose" in stderr
    assert (out / "00_good.ipynb").exists() and (out / "00_good.txt").exists()  # RUNS_DIR per notebook
    assert (out / "summary.txt").read_text().startswith("notebook")
    assert (out / "kernels.log").exists() and "broken on purpose" not in stderr[: stderr.index("FAILED")]


@pytest.mark.notebook
def test_series_succeeds_with_parameters(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--notebooks", str(folder), "--out", str(out), "--only", "00", "-p", "SMOKE", "True"]) == 0
    assert "acc = 0.5000" in capsys.readouterr().out


def test_summary_table_columns():
    table = format_summary([NotebookResult("03_train", "ok", 12.25, 15.5, "test_acc = 0.9700", "", 812.4),
                            NotebookResult("04_evaluate", "FAILED", 1.0, 3.0, "", "boom", 900.0)])
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "cells", "s", "wall", "s", "peak", "MiB", "headline"]
    assert lines[2].split() == ["03_train", "ok", "12.2", "15.5", "812", "test_acc", "=", "0.9700"]
    assert lines[-1].split()[:4] == ["total", "13.2", "18.5", "900"]


def refreshable(path, body):
    """A notebook as committed: a parameters cell, a cell to run, stale outputs, widget state to drop."""
    write_notebook(path, body)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="stale output\n")]
    nb.cells[1].execution_count = 7
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, path)


@pytest.mark.notebook
def test_refresh_executes_in_place_with_default_parameters_keeping_counts(tmp_path):
    notebook = tmp_path / "nb" / "00_refresh.ipynb"
    notebook.parent.mkdir()
    refreshable(notebook, "import os\nprint(repr(RUNS_DIR), SMOKE, os.getcwd())\n6 * 7")
    seconds = refresh_notebook(notebook, timeout=60)
    assert 0 < seconds < 60
    nb = nbformat.read(notebook, as_version=4)
    assert [cell.execution_count for cell in nb.cells] == [1, 2]  # nbval needs the counts
    assert nb.cells[0].metadata["tags"] == ["parameters"] and nb.cells[0].outputs == []
    stream, result = nb.cells[1].outputs
    assert stream.text == f"'' False {notebook.parent}\n"  # default parameters, run in the notebook's folder
    assert result.output_type == "execute_result" and result.data["text/plain"] == "42"
    assert "widgets" not in nb.metadata and nb.metadata["kernelspec"]["name"] == "python3"
    assert all("execution" not in cell.metadata for cell in nb.cells)  # no timings: reruns differ only in output


@pytest.mark.notebook
def test_refresh_stops_at_a_failing_cell_and_leaves_the_file_untouched(tmp_path):
    notebook = tmp_path / "01_broken.ipynb"
    refreshable(notebook, "raise RuntimeError('broken on purpose')")
    before = notebook.read_bytes()
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken on purpose"):
        refresh_notebook(notebook, timeout=60)
    assert notebook.read_bytes() == before  # the stale outputs stay; nothing half-written


def seeded_notebook(path, body):
    """A notebook with a SEED parameter (and a DATA_DIR one) whose code cell is ``body``."""
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(
        'SEED = 7  # seed\nRUNS_DIR = ""  # artifacts\nDATA_DIR = ""  # data\nSMOKE = False  # tiny run')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_default_parameters_reads_the_literals_of_the_parameters_cell(tmp_path):
    seeded_notebook(tmp_path / "00_x.ipynb", "SEED = 1")
    assert default_parameters(tmp_path / "00_x.ipynb") == {"SEED": 7, "RUNS_DIR": "", "DATA_DIR": "", "SMOKE": False}


@pytest.mark.notebook
def test_refresh_with_spread_keeps_every_seed_runs_numbers_in_the_metadata(tmp_path):
    notebook = tmp_path / "nb" / "00_spread.ipynb"
    notebook.parent.mkdir()
    body = ("from pathlib import Path\nfrom helpers.records import record\n"
            "Path(DATA_DIR or '.').mkdir(exist_ok=True)\n"
            "record(headline='acc', acc=SEED / 1000, epochs=3, name='x', smooth=True)")
    seeded_notebook(notebook, body)
    refresh_notebook(notebook, timeout=60, spread=True)
    course = nbformat.read(notebook, as_version=4).metadata["course"]
    seeds = [7 + offset for offset in SPREAD_OFFSETS]
    # numbers only (no text, no booleans), one value per seed run, in the order of the seeds
    assert course["spread"] == {"seeds": seeds, "values": {"acc": [s / 1000 for s in seeds], "epochs": [3] * 5}}
    assert not (notebook.parent / "data").exists()  # the seed runs wrote their data to a temporary folder
    # a refresh without the spread keeps the measured one
    refresh_notebook(notebook, timeout=60)
    assert nbformat.read(notebook, as_version=4).metadata["course"]["spread"] == course["spread"]


def test_spread_needs_a_whole_number_seed(tmp_path):
    write_notebook(tmp_path / "00_noseed.ipynb", "1")
    with pytest.raises(ValueError, match="has no whole-number SEED parameter"):
        measure_spread(tmp_path / "00_noseed.ipynb")
