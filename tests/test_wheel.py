"""The course's package outside the checkout: a wheel in a fresh venv, and notebooks copied into an empty folder.

The wheel is built offline from a copy of the sources (``pip wheel --no-deps --no-build-isolation``, so
nothing is written into the checkout) and installed, without its dependencies, into a new venv. That venv
borrows the torch stack already installed in this interpreter's venv through a ``.pth`` line naming its
site-packages: a plain path line, so the editable install's finder (itself a ``.pth`` hook there) is never
run and ``helpers`` can only come from the wheel. No download. The venv gets its own ``python3`` kernelspec,
so papermill, started with the venv's Python, runs the notebooks in a kernel of that venv.

03 and 07 are copied into an empty temporary folder and run there with ``SMOKE=True`` and their default
``RUNS_DIR`` and ``DATA_DIR`` (the suite's ``COURSE_RUNS_DIR``/``COURSE_DATA_DIR`` are dropped for them): their
artifacts must land under that folder, and nothing they write may name the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("03_train", "07_computer_vision")
RUN_TIMEOUT_S = 600
# The kernel's own report, printed as one JSON line: which Python, which helpers, where the defaults go.
PROBE = """import json, sys
import helpers
from helpers.paths import data_dir, project_root, runs_dir
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "helpers": helpers.__file__,
                  "root": str(project_root()), "runs": str(runs_dir("", "03_train")), "data": str(data_dir(""))}))
"""

pytestmark = pytest.mark.notebook


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; on failure, fail the test with its output."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of pyproject.toml, README.md and helpers/."""
    source = tmp_path_factory.mktemp("wheel-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "helpers", source / "helpers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--wheel-dir", str(out), str(source)], timeout=300)
    wheels = list(out.glob("pytorch_workflow_notebooks-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {sorted(p.name for p in out.iterdir())}"
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with the wheel, the torch stack of this venv (no editable helpers) and a python3 kernel."""
    folder = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(folder)], timeout=120)
    python = folder / "bin" / "python"
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             timeout=60).stdout.strip())
    borrowed = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "course-torch-stack.pth").write_text("\n".join(sorted(borrowed)) + "\n", encoding="utf-8")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--quiet", str(wheel)], timeout=300)
    run([str(python), "-m", "ipykernel", "install", "--prefix", str(folder), "--name", "python3"], timeout=120)
    return folder


def kernel_environment() -> dict[str, str]:
    """The suite's environment (hermetic caches, network guard) without its runs/data redirection."""
    return {name: value for name, value in os.environ.items() if name not in ("COURSE_RUNS_DIR", "COURSE_DATA_DIR")}


def papermill(venv: Path, notebook: Path, folder: Path, *parameters: str) -> Path:
    """Execute ``notebook`` in ``folder`` with the venv's papermill and kernel; returns the executed copy."""
    out = notebook.with_name(f"{notebook.stem}.out.ipynb")
    run([str(venv / "bin" / "python"), "-m", "papermill", str(notebook), str(out), "--kernel", "python3",
         "--cwd", str(folder), "--no-progress-bar", *parameters],
        cwd=folder, env=kernel_environment(), timeout=RUN_TIMEOUT_S)
    return out


def test_the_wheel_holds_the_whole_package(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"helpers/{p.name}" for p in (ROOT / "helpers").glob("*.py")}
    assert "helpers/__init__.py" in modules and "helpers/paths.py" in modules
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "benchmarks/"))], sorted(names)


def test_copied_notebooks_run_outside_the_checkout(venv: Path, tmp_path: Path):
    folder = tmp_path / "my course"  # a space in the name, as on many learners' machines
    folder.mkdir()
    probe = folder / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)],
                                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                     "display_name": "Python 3"}}), probe)
    executed = nbformat.read(papermill(venv, probe, folder), as_version=4)
    report = json.loads(executed.cells[0].outputs[0]["text"])
    assert report["prefix"] == str(venv), f"the kernel is not the temporary venv's Python: {report}"
    assert Path(report["helpers"]).is_relative_to(venv), f"helpers imported from elsewhere than the wheel: {report}"
    assert report["root"] == str(folder), f"outside the checkout the project folder is the notebook's: {report}"
    assert report["runs"] == str(folder / "runs" / "03_train") and report["data"] == str(folder / "data"), report

    seconds = {}
    for name in COPIED:
        shutil.copy2(ROOT / "notebooks" / f"{name}.ipynb", folder / f"{name}.ipynb")
        started = time.monotonic()
        papermill(venv, folder / f"{name}.ipynb", folder, "-p", "SMOKE", "True")
        seconds[name] = time.monotonic() - started
        artifacts = [p for p in (folder / "runs" / name).rglob("*") if p.is_file()]
        assert artifacts, f"{name}: no artifacts under {folder / 'runs' / name}: {sorted(folder.rglob('*'))}"

    borrowed = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}  # the torch stack, on purpose
    mentions = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".json", ".csv", ".txt", ".md", ".log"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for prefix in borrowed:
                text = text.replace(prefix, "<torch stack>")
            if str(ROOT) in text:
                mentions.append(str(path.relative_to(folder)))
    assert not mentions, f"files written outside the checkout name the checkout {ROOT}: {mentions}"
    print(f"outside the checkout: {', '.join(f'{n} {s:.0f} s' for n, s in seconds.items())} (SMOKE=True)")
