"""Run the notebooks in order with papermill and summarise them (``make run``).

    python -m helpers.series                     # every notebook, default parameters
    python -m helpers.series --only 03 -p EPOCHS 5
    python -m helpers.series --smoke             # tiny data, seconds per notebook
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers.params import parse_value
from helpers.paths import PROJECT_ROOT, display_path
from helpers.records import read_records
from helpers.tables import format_table

__all__ = [
    "SPREAD_OFFSETS", "NotebookResult", "default_parameters", "format_summary", "list_notebooks", "main",
    "measure_spread", "refresh_notebook", "run_notebook", "run_series",
]

# `make notebooks` reruns each notebook with SEED + each of these to measure how much its numbers move
# with the seed; the tests compare a rerun on any machine (SEED + 1000) with that spread.
SPREAD_OFFSETS = (100, 200, 300, 400, 500)


@dataclass
class NotebookResult:
    """What happened to one notebook in a series run."""

    name: str
    status: str          # "ok" or "FAILED"
    seconds: float       # time spent in cells, kernel start excluded
    wall_seconds: float  # everything, kernel start included
    headline: str        # "name = value" of the recorded headline metric, or ""
    error: str = ""
    peak_mib: float = 0.0  # largest memory of the kernel and its child processes together (PSS)


def _footprint(process: Any) -> int:
    """Bytes of memory a process really uses: PSS on Linux (shared libraries split among the
    processes that map them, so several processes importing torch are not counted several times),
    resident size elsewhere."""
    info = process.memory_full_info()
    return getattr(info, "pss", info.rss)


class _PeakMemory:
    """Samples the memory of this process's children (the kernel and what it starts) in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak_bytes = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil  # installed with Jupyter; imported here to keep `import helpers` light

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += _footprint(child)
                except psutil.Error:  # the process ended between listing and reading
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def list_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in ``folder`` in order; ``only`` keeps those whose name starts with a prefix."""
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in only)]
        if not notebooks:
            raise SystemExit(f"no notebook in {folder} starts with {', '.join(only)}")
    return notebooks


def _headline(records: dict[str, Any]) -> str:
    name = records.get("_headline")
    if name is None:
        return ""
    value = records[name]
    return f"{name} = {value:.4f}" if isinstance(value, float) else f"{name} = {value}"


def _cell_seconds(notebook: Path) -> float:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in cells)


def run_notebook(
    notebook: Path, out_dir: Path, parameters: dict[str, Any], timeout: int = 900
) -> NotebookResult:
    """Execute one notebook into ``out_dir`` with its artifacts in ``out_dir/<name>``."""
    import papermill  # imported here: only the series runner needs it

    name = notebook.stem
    output = out_dir / notebook.name
    params = {"RUNS_DIR": str(out_dir / name), **parameters}
    started = time.perf_counter()
    error = ""
    with _PeakMemory() as memory, _unwatched_kernels():
        try:
            papermill.execute_notebook(
                str(notebook), str(output), parameters=params, kernel_name="python3",
                cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
            )
        except Exception as exc:  # papermill raises its own error types; keep the last line
            error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    wall = time.perf_counter() - started
    seconds = _cell_seconds(output) if output.exists() else wall
    records = read_records(output) if output.exists() else {}
    return NotebookResult(name, "FAILED" if error else "ok", seconds, wall, _headline(records), error,
                          memory.peak_bytes / 2**20)


@contextlib.contextmanager
def _kernel_environment(name: str, value: str) -> Iterator[None]:
    """Kernels started meanwhile see the environment variable ``name`` set to ``value``; restored afterwards."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _unwatched_kernels() -> contextlib.AbstractContextManager[None]:
    """Kernels started meanwhile print one line per epoch instead of a progress bar (``COURSE_PROGRESS``).

    Nobody watches them live, and a bar redrawn in a saved notebook leaves one fragment per redraw.
    """
    return _kernel_environment("COURSE_PROGRESS", "lines")


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's and its children's (the kernels') stderr to ``path`` for a while."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_series(
    notebooks: list[Path], out_dir: Path, parameters: dict[str, Any], echo: bool = True
) -> list[NotebookResult]:
    """Run ``notebooks`` one after another (a failure does not stop the others).

    Kernel messages (warnings, progress bars) go to ``out_dir/kernels.log``, not the terminal.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for notebook in notebooks:
        if echo:
            print(f"running {notebook.name} ...", flush=True)
        with _stderr_to(out_dir / "kernels.log"):
            results.append(run_notebook(notebook, out_dir, parameters))
    return results


def default_parameters(notebook: Path) -> dict[str, Any]:
    """The literal values of ``notebook``'s ``parameters`` cell ({} when it has none)."""
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {target.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    return {}


def _run_with_seed(notebook: Path, seed: int, folder: Path, timeout: int) -> dict[str, Any]:
    """Execute ``notebook`` with ``SEED = seed`` (artifacts and data in ``folder``) and return its records."""
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / notebook.name
    command = [sys.executable, "-m", "papermill", str(notebook), str(output), "--cwd", str(notebook.parent),
               "-k", "python3", "--no-progress-bar", "--execution-timeout", str(timeout),
               "-p", "SEED", str(seed), "-p", "RUNS_DIR", str(folder / "runs")]
    if "DATA_DIR" in default_parameters(notebook):
        command += ["-p", "DATA_DIR", str(folder / "data")]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        tail = "\n".join(finished.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{notebook.name} with SEED = {seed} failed:\n{tail}")
    return read_records(output)


def measure_spread(notebook: Path, offsets: tuple[int, ...] = SPREAD_OFFSETS, workers: int = 2,
                   timeout: int = 900) -> dict[str, Any]:
    """Run ``notebook`` at its defaults with ``SEED`` + each offset; return the seeds and each number's values.

    ``{"seeds": [142, 242, ...], "values": {"test_acc": [0.96, 0.97, ...], ...}}``: every int or float that
    all the runs recorded, in the order of the seeds. ``workers`` runs go side by side, one thread each.
    """
    seed = default_parameters(notebook).get("SEED")
    if not isinstance(seed, int):
        raise ValueError(f"{notebook.name} has no whole-number SEED parameter to vary")
    seeds = [seed + offset for offset in offsets]
    with tempfile.TemporaryDirectory(prefix="spread-") as tmp, _unwatched_kernels(), _one_thread_kernels(), \
            ThreadPoolExecutor(max_workers=workers) as pool:
        runs = list(pool.map(lambda s: _run_with_seed(notebook, s, Path(tmp) / f"seed{s}", timeout), seeds))
    numeric = [{k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
               for r in runs]
    shared = sorted(set.intersection(*(set(r) for r in numeric)))
    return {"seeds": seeds, "values": {key: [r[key] for r in numeric] for key in shared}}


def _one_thread_kernels() -> contextlib.AbstractContextManager[None]:
    """Kernels started meanwhile use one thread, so side-by-side runs do not fight over the cores."""
    return _kernel_environment("OMP_NUM_THREADS", "1")


def refresh_notebook(notebook: Path, timeout: int = 900, spread: bool = False) -> float:
    """Re-execute ``notebook`` in place with default parameters (``make notebooks``); return seconds.

    Execution counts are kept (nbval needs them) and no timing metadata is added, so a re-run changes
    only what the code prints. With ``spread``, the notebook is also run with other seeds
    (``measure_spread``) and the values are kept in its metadata (``course.spread``); without, the
    spread already there is kept.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    started = time.perf_counter()
    with _unwatched_kernels():
        nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", record_timing=False,
            resources={"metadata": {"path": str(notebook.parent)}},
        ).execute()
    nb.metadata.pop("widgets", None)
    import torch

    course = dict(nb.metadata.get("course", {}))
    course["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # which CPU kernels made these outputs
    if spread:
        course["spread"] = measure_spread(notebook, timeout=timeout)
    nb.metadata["course"] = course
    nbformat.write(nb, notebook)
    return time.perf_counter() - started


def format_summary(results: list[NotebookResult]) -> str:
    """A plain-text table: notebook, status, seconds in cells, wall seconds, peak memory, headline metric."""
    rows = [[r.name, r.status, f"{r.seconds:.1f}", f"{r.wall_seconds:.1f}", f"{r.peak_mib:.0f}", r.headline]
            for r in results]
    rows.append(["total", "", f"{sum(r.seconds for r in results):.1f}", f"{sum(r.wall_seconds for r in results):.1f}",
                 f"{max(r.peak_mib for r in results):.0f}", "(peak: the largest notebook)"])
    return format_table(["notebook", "status", "cells s", "wall s", "peak MiB", "headline"], rows, align="llrrrl")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``make run``; returns the exit code."""
    parser = argparse.ArgumentParser(description="Execute the notebooks in order with papermill.")
    parser.add_argument("--notebooks", type=Path, default=PROJECT_ROOT / "notebooks")
    parser.add_argument("--out", type=Path, help="output folder (default runs/<timestamp>)")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 03 04")
    parser.add_argument("--smoke", action="store_true", help="pass SMOKE=True: tiny data, seconds each")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter for every notebook, as in papermill")
    parser.add_argument("--refresh", action="store_true",
                        help="re-execute the notebooks and their solutions in place instead (make notebooks)")
    parser.add_argument("--no-spread", action="store_true",
                        help="with --refresh: skip the reruns with other seeds (keep the spread already recorded)")
    args = parser.parse_args(argv)
    if args.refresh:  # the numbered notebooks, then their worked solutions (notebooks/solutions)
        solutions = sorted((args.notebooks / "solutions").glob("[0-9][0-9]_*.ipynb"))
        if args.only:
            solutions = [nb for nb in solutions if any(nb.name.startswith(p) for p in args.only)]
        numbered = list_notebooks(args.notebooks, args.only)
        for notebook in [*numbered, *solutions]:
            seconds = refresh_notebook(notebook, spread=notebook in numbered and not args.no_spread)
            print(f"{display_path(notebook)}: {seconds:.1f} s", flush=True)
        return 0
    out_dir = args.out or PROJECT_ROOT / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    parameters = {name: parse_value(value) for name, value in args.p}
    if args.smoke:
        parameters["SMOKE"] = True
    results = run_series(list_notebooks(args.notebooks, args.only), out_dir, parameters)
    summary = format_summary(results)
    (out_dir / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    print(f"executed notebooks and artifacts: {out_dir}")
    failed = [r for r in results if r.status != "ok"]
    for r in failed:
        print(f"FAILED: {r.name}: {r.error}\n  see {out_dir / (r.name + '.ipynb')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
