"""Root conftest: nbval settings, and a hermetic run (no network, no writes outside the checkout and temp folders).

nbval: warnings on stderr differ between machines and library versions; only the
stdout and results of cells marked ``# NBVAL_CHECK_OUTPUT`` are compared (a
conftest in tests/ has no effect on notebook collection).

Nothing written to the checkout: ``COURSE_RUNS_DIR`` and ``COURSE_DATA_DIR`` point the notebooks'
default ``runs/`` and ``data/`` into the run's temporary folder, and a snapshot of the checkout's
``runs/`` and ``data/`` taken at the start must be unchanged at the end, or the run fails.

Hermetic run: the controller (the only process without xdist) makes one
temporary folder for the run and points every per-user cache and config folder
into it (``HERMETIC_DIRS``; ``TORCH_HOME`` stays empty, so no cached weights are
found), sets ``COURSE_OFFLINE=1``, drops proxy settings and puts ``tests/hermetic``
first on ``PYTHONPATH``. xdist workers and every process they start inherit this
environment, and the ``sitecustomize.py`` there installs the network guard of
``tests/hermetic/course_netguard.py`` in each of them; this conftest installs it in
the pytest processes. At the end, any refused attempt (one log for the whole run)
is printed and fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
HERMETIC = ROOT / "tests" / "hermetic"
collect_ignore = ["tests/hermetic"]  # sitecustomize.py and the guard are not test modules

RUN_DIR_ENV = "COURSE_TEST_RUN_DIR"  # the run's temporary folder; everything below goes there
LOG_ENV = "COURSE_NETGUARD_LOG"  # refused network attempts, one line each (course_netguard.LOG_ENV)
OFFLINE_ENV = "COURSE_OFFLINE"  # "1": helpers never try the network
# Folders that would otherwise be created below $HOME (or /var/cache for fontconfig run as root).
HERMETIC_DIRS = {
    "TORCH_HOME": "torch",  # torch.hub: empty, so torchvision finds no cached weights
    "MPLCONFIGDIR": "matplotlib",  # ~/.config/matplotlib, ~/.cache/matplotlib (font list)
    "IPYTHONDIR": "ipython",  # ~/.ipython (kernel history.sqlite, profile)
    "JUPYTER_CONFIG_DIR": "jupyter/config",  # ~/.jupyter: user configuration must not change the run
    "JUPYTER_DATA_DIR": "jupyter/data",  # user kernelspecs; python3 is the venv's own (sys.prefix/share)
    "JUPYTER_RUNTIME_DIR": "jupyter/runtime",  # kernel connection files
    "XDG_CACHE_HOME": "xdg/cache",
    "XDG_CONFIG_HOME": "xdg/config",
    "XDG_DATA_HOME": "xdg/data",
    "XDG_STATE_HOME": "xdg/state",
    "HF_HOME": "huggingface",
    "SCIKIT_LEARN_DATA": "scikit_learn_data",
    "TRITON_CACHE_DIR": "triton",  # ~/.triton (torch.compile on a GPU)
    "CUDA_CACHE_PATH": "nv",  # ~/.nv/ComputeCache (CUDA JIT)
}
PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY")
# matplotlib runs fc-list once per run (fresh MPLCONFIGDIR): no font folders, and its cache in the run folder.
FONTS_CONF = '<?xml version="1.0"?>\n<fontconfig>\n  <cachedir>{cache}</cachedir>\n</fontconfig>\n'

_saved_environ: dict[str, str | None] = {}
_refused: list[str] = []
# Folders of the checkout that hold a learner's own runs and data: the suite must leave them as they were.
LEARNER_FOLDERS = ("runs", "data")
_checkout_before: dict[str, tuple[int, int]] = {}
_checkout_changes: list[str] = []


def checkout_snapshot(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """Every file and folder under the checkout's ``runs/`` and ``data/``: relative path -> (size, mtime_ns)."""
    found = {}
    for name in LEARNER_FOLDERS:
        top = root / name
        if top.exists():
            found[name] = (0, top.stat().st_mtime_ns)
            for path in top.rglob("*"):
                info = path.lstat()
                found[str(path.relative_to(root))] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return found


def checkout_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """What was added, removed or rewritten between two snapshots, one line each."""
    lines = [f"added: {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed: {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"changed: {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]
              and not (before[p][0] == after[p][0] == 0 and Path(ROOT / p).is_dir())]
    return lines


def netguard():
    """tests/hermetic/course_netguard.py, the same module object that sitecustomize.py imported, if it did."""
    if "course_netguard" not in sys.modules:
        spec = importlib.util.spec_from_file_location("course_netguard", HERMETIC / "course_netguard.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["course_netguard"] = module
        spec.loader.exec_module(module)
    return sys.modules["course_netguard"]


def _is_controller(config) -> bool:
    return not hasattr(config, "workerinput")  # xdist workers have it; a run without xdist is its own controller


def _set_environ(name: str, value: str | None) -> None:
    _saved_environ.setdefault(name, os.environ.get(name))
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _prepare_hermetic_run() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="course-tests-"))
    _set_environ(RUN_DIR_ENV, str(run_dir))
    for name, folder in HERMETIC_DIRS.items():
        (run_dir / folder).mkdir(parents=True)
        _set_environ(name, str(run_dir / folder))
    fonts = run_dir / "fontconfig"
    (fonts / "cache").mkdir(parents=True)
    (fonts / "fonts.conf").write_text(FONTS_CONF.format(cache=fonts / "cache"), encoding="utf-8")
    _set_environ("FONTCONFIG_FILE", str(fonts / "fonts.conf"))
    log = run_dir / "netguard.log"
    log.touch()
    _set_environ(LOG_ENV, str(log))
    _set_environ(OFFLINE_ENV, "1")
    # notebooks run with RUNS_DIR = "" and DATA_DIR = "" (nbval) write here, not to the checkout's runs/, data/
    _set_environ("COURSE_RUNS_DIR", str(run_dir / "runs"))
    _set_environ("COURSE_DATA_DIR", str(run_dir / "data"))
    _set_environ("COURSE_PROGRESS", "lines")  # kernels nobody watches: fit prints one line per epoch, no bar
    for name in PROXY_VARS:  # a proxy on loopback would carry traffic past the guard
        _set_environ(name, None)
    entries = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e and e != str(HERMETIC)]
    _set_environ("PYTHONPATH", os.pathsep.join([str(HERMETIC), *entries]))


def pytest_configure(config):
    if _is_controller(config):
        _prepare_hermetic_run()
        _checkout_before.update(checkout_snapshot())
    netguard().install(os.environ.get(LOG_ENV))


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


def pytest_sessionfinish(session):
    if not _is_controller(session.config) or not os.environ.get(LOG_ENV):
        return
    _refused[:] = netguard().read_log(os.environ[LOG_ENV])
    _checkout_changes[:] = checkout_changes(_checkout_before, checkout_snapshot())
    if (_refused or _checkout_changes) and session.exitstatus in (pytest.ExitCode.OK,
                                                                  pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    if _checkout_changes and _is_controller(config):
        terminalreporter.section("the suite changed the checkout's runs/ or data/ (it must write only to "
                                 "temporary folders)", sep="=", red=True, bold=True)
        for line in _checkout_changes[:20]:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(_checkout_changes)} change(s): the run fails.", red=True, bold=True)
    if _refused and _is_controller(config):
        terminalreporter.section("network access refused (the suite must run offline)", sep="=", red=True,
                                 bold=True)
        for line in _refused:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(_refused)} refused attempt(s): the run fails.", red=True, bold=True)


def pytest_unconfigure(config):
    if not _is_controller(config) or RUN_DIR_ENV not in _saved_environ:
        return
    netguard().uninstall()
    run_dir = os.environ.get(RUN_DIR_ENV)
    for name, value in _saved_environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_environ.clear()
    if run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
