"""JupyterLab in a real browser, as a learner meets it: run all cells of 00 and 03, see no error, and
see fit's progress bar drawn as a widget.

The test starts the venv's JupyterLab on 127.0.0.1 (a free port, a token) in a temporary copy of
``notebooks/`` (``RUNS_DIR`` pointed into the temporary folder, so nothing in the checkout changes), with
the settings ``make lab`` uses (read from the Makefile: no news prompt, no update check). Kernels get
the server's environment without ``COURSE_PROGRESS``, so ``fit`` picks its widget bar as in a learner's
JupyterLab. Debian's Chromium, driven by Playwright, opens each notebook, clears the committed outputs,
runs all cells from the Run menu and waits until every code cell has a fresh execution count; then
the page is read: no error output, no news prompt, and in 03 an ipywidgets progress bar that reached
100%. Screenshots stay in the test's temporary folder (their paths are in every failure message).

Chromium talks to the lab only: its background services are switched off by flags, host names other
than 127.0.0.1 do not resolve, and every page request to another address is refused and fails the test.
The lab server and the kernels are Python processes under the suite's network guard (conftest.py).

Skipped, with the reason in the short test summary, where ``/usr/bin/chromium`` or Playwright is
missing; ``.ci/run`` installs Debian's chromium and ``make setup`` installs Playwright (dev extra).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = f"Chromium not found at {CHROMIUM}: apt-get install chromium"

NOTEBOOK_TIMEOUT_S = 240  # all cells of one notebook, from the click on Run All Cells
SERVER_START_TIMEOUT_S = 90
PAGE_LOAD_TIMEOUT_S = 90  # JupyterLab's page and the notebook's kernel, on a busy 2-core machine

# Chromium must only talk to the lab on 127.0.0.1 (Playwright adds its own automation flags).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # no name resolves, so no lookup leaves
]

# The page, read in one go: code cells, their prompts, error and stderr outputs, widget bars, toasts.
PAGE_STATE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const cells = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  const text = (el) => (el ? el.textContent : '').trim();
  const stderr = [...panel.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')];
  const bars = [...panel.querySelectorAll('.jp-OutputArea-output .widget-hprogress')].map((bar) => {
    const box = bar.closest('.widget-hbox');
    const fill = bar.querySelector('.progress-bar');
    return {label: text(box), width: fill ? fill.style.width : '',
            danger: !!(fill && fill.classList.contains('progress-bar-danger')),
            shown: bar.getBoundingClientRect().width > 0};
  });
  return {
    prompts: cells.map((cell) => text(cell.querySelector('.jp-InputArea-prompt'))),
    stderr: stderr.map((el) => {
      const cell = el.closest('.jp-CodeCell');
      return {cell: cells.indexOf(cell), prompt: text(cell && cell.querySelector('.jp-InputArea-prompt')),
              text: text(el).slice(0, 2000)};
    }),
    widgetErrors: [...panel.querySelectorAll('.jp-OutputArea-output')].map(text)
        .filter((t) => t.includes('Error displaying widget') || t.includes('Loading widget...')),
    bars,
    kernel: text(panel.querySelector('.jp-Toolbar-kernelName')),
    status: text(document.querySelector('.jp-StatusBar-TextItem[title^="Change kernel"]')),
    toasts: [...document.querySelectorAll('.jp-toast-message')].map(text),
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(text),
  };
}"""

# True once no code cell shows an execution count (after Clear Outputs of All Cells).
NO_EXECUTION_COUNT_JS = """() => ![...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]
  .some((prompt) => /\\d/.test(prompt.textContent))"""

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group(name="browser")]


def makefile_value(name: str) -> str:
    """``NAME := value`` from the Makefile: the test starts the lab with what ``make lab`` uses."""
    match = re.search(rf"^{name}\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"the Makefile defines no {name} (make lab and this test share it)"
    return match.group(1).strip()


def test_make_lab_switches_off_the_news_prompt():
    """The settings that keep the news prompt and the update check away, in the form JupyterLab reads."""
    overrides = json.loads(makefile_value("LAB_OVERRIDES"))
    assert overrides["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false",
                                                                        "checkForUpdates": False}
    flags = makefile_value("LAB_FLAGS").split()
    assert "--LabApp.news_url=None" in flags
    lab_recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert lab_recipe and "$(LAB_FLAGS)" in lab_recipe.group(1) and "notebooks" in lab_recipe.group(1)


# --- the lab server -------------------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    root: Path  # the temporary copy of notebooks/
    log: Path
    redirected: set[str]  # notebooks whose RUNS_DIR points into the temporary folder
    blocked: list[str] = field(default_factory=list)  # page requests to other addresses, refused

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to loopback
        with opener.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 25) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_notebooks(folder: Path, out: Path) -> set[str]:
    """Copy notebooks/ to ``folder``, RUNS_DIR (and DATA_DIR) pointed into ``out``: the checkout stays as it is.

    Returns the names of the notebooks whose RUNS_DIR was found and changed.
    """
    redirected = set()
    shutil.copytree(NOTEBOOKS, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    for path in folder.glob("*.ipynb"):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                source = "".join(cell["source"])
                for name, value in (("RUNS_DIR", out / "runs" / path.stem), ("DATA_DIR", out / "data")):
                    line = f"{name} = {str(value)!r}"
                    source, found = re.subn(rf"^{name}\s*=.*$", lambda _, line=line: line, source, flags=re.MULTILINE)
                    if found and name == "RUNS_DIR":
                        redirected.add(path.stem)
                cell["source"] = source.splitlines(keepends=True)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return redirected


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    redirected = copy_notebooks(root, base)
    settings = base / "app-settings"
    (settings / "overrides.d").mkdir(parents=True)
    (settings / "overrides.d" / "pytorch-course.json").write_text(makefile_value("LAB_OVERRIDES") + "\n")
    token = secrets.token_hex(16)
    port = free_port()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        *makefile_value("LAB_FLAGS").split(),
        f"--LabApp.app_settings_dir={settings}",  # make lab writes the same overrides into the venv's
        f"--LabApp.user_settings_dir={base / 'user-settings'}",  # a learner's first start: nothing saved
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.extension_manager=readonly",  # never asks PyPI for extensions
    ]
    if getattr(os, "geteuid", lambda: 1)() == 0:
        command.append("--allow-root")
    env = {name: value for name, value in os.environ.items() if name != "COURSE_PROGRESS"}  # fit: widget bar
    env.setdefault("OMP_NUM_THREADS", "1")  # as make test: other tests and Chromium share the cores
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, cwd=base)
    info = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log, redirected=redirected)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode} before serving:\n{info.log_tail()}")
            try:
                info.api("GET", "/api/status")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {info.url} within {SERVER_START_TIMEOUT_S} s:\n"
                                f"{info.log_tail()}")
                time.sleep(0.5)
        yield info
    finally:
        stop_server(server, info)


def stop_server(server: subprocess.Popen, lab: Lab) -> None:
    """Shut the server down through its API (it stops its kernels), then make sure nothing is left."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if server.poll() is None:
        try:
            lab.api("POST", "/api/shutdown")
        except (urllib.error.URLError, OSError):
            pass
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    for child in children:  # kernels run in sessions of their own
        try:
            child.kill()
        except psutil.Error:
            pass


# --- the browser ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # fresh: no history, cache or settings

    def only_the_lab(route):
        url = route.request.url
        if url.startswith(f"{lab.url}/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            lab.blocked.append(url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            # the suite's FONTCONFIG_FILE lists no fonts (for matplotlib); Chromium needs the system's
            env={name: value for name, value in os.environ.items() if name != "FONTCONFIG_FILE"},
        )
        context.route("**/*", only_the_lab)
        try:
            yield context
        finally:
            context.close()


@dataclass
class Run:
    state: dict
    seconds: float
    screenshot: Path


def shoot(page, path: Path) -> Path:
    try:
        page.screenshot(path=str(path))
    except Exception as error:  # noqa: BLE001 - the screenshot helps; its failure must not hide the real one
        return Path(f"{path} (not taken: {error})")
    return path


def code_cell_count(path: Path) -> int:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return sum(cell["cell_type"] == "code" for cell in notebook["cells"])


def click_menu(page, menu: str, item: str) -> None:
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(".lm-Menu:not(.lm-mod-hidden) .lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$")).click()


def describe(state: dict | None) -> str:
    if not state:
        return "no notebook panel on the page"
    prompts = state["prompts"]
    busy = [i for i, p in enumerate(prompts) if p == "[*]:"]
    waiting = [i for i, p in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", p) and p != "[*]:"]
    return (f"{len(prompts)} code cells on the page; running or queued: cells {busy}; not run: cells {waiting}; "
            f"kernel {state['kernel']!r} {state['status']!r}; dialogs {state['dialogs']}")


def run_all_cells(page, lab: Lab, name: str, shots: Path) -> Run:
    """Open ``name`` in JupyterLab, clear its outputs, Run All Cells, wait until every code cell ran."""
    assert name in lab.redirected, (f"{name}: no RUNS_DIR line in its parameters cell: running it would write "
                                    "into the checkout's runs/")
    expected = code_cell_count(lab.root / f"{name}.ipynb")  # the copy: notebooks/ may change meanwhile
    page.set_default_timeout(PAGE_LOAD_TIMEOUT_S * 1000)
    page.goto(f"{lab.url}/lab/workspaces/{name}/tree/{name}.ipynb?token={lab.token}")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell").first.wait_for()
    screenshot = shots / f"{name}.png"

    deadline = time.monotonic() + PAGE_LOAD_TIMEOUT_S  # the kernel starts with the notebook
    state = page.evaluate(PAGE_STATE_JS)
    while not (state and state["kernel"].startswith("Python") and "Idle" in state["status"]):
        if (state and state["dialogs"]) or time.monotonic() > deadline:
            pytest.fail(f"{name}: the kernel did not become ready within {PAGE_LOAD_TIMEOUT_S} s "
                        f"({describe(state)}); screenshot: {shoot(page, screenshot)}\n{lab.log_tail()}")
        time.sleep(0.5)
        state = page.evaluate(PAGE_STATE_JS)

    click_menu(page, "Edit", "Clear Outputs of All Cells")  # committed outputs must not count as this run's
    page.wait_for_function(NO_EXECUTION_COUNT_JS)  # every prompt is [ ]: now
    started = time.monotonic()
    click_menu(page, "Run", "Run All Cells")
    while True:
        time.sleep(1)
        state = page.evaluate(PAGE_STATE_JS)
        prompts = state["prompts"] if state else []
        counts = [int(m[1]) for p in prompts if (m := re.fullmatch(r"\[(\d+)\]:", p))]
        stopped = bool(prompts) and "[*]:" not in prompts
        if len(prompts) == expected and counts == list(range(1, expected + 1)):
            break  # every code cell ran once, in order, in this kernel
        if stopped and (state["stderr"] or state["widgetErrors"]) and time.monotonic() - started > 5:
            break  # an error stopped Run All: the checks below say which cell
        if state and state["dialogs"]:
            pytest.fail(f"{name}: a dialog appeared while running: {state['dialogs']}; "
                        f"screenshot: {shoot(page, screenshot)}")
        if time.monotonic() - started > NOTEBOOK_TIMEOUT_S:
            pytest.fail(f"{name}: Run All Cells did not finish within {NOTEBOOK_TIMEOUT_S} s "
                        f"({describe(state)}, {expected} expected); screenshot: {shoot(page, screenshot)}")
    return Run(state=state, seconds=time.monotonic() - started, screenshot=screenshot)


def assert_no_errors(run: Run, lab: Lab, name: str, page) -> None:
    errors = [s for s in run.state["stderr"] if "Traceback" in s["text"] or "Error" in s["text"]]
    shot = shoot(page, run.screenshot)
    assert not errors, f"{name}: error output in JupyterLab (screenshot: {shot}):\n" + "\n".join(
        f"code cell {e['cell']} {e['prompt']}\n{e['text']}" for e in errors)
    assert not run.state["widgetErrors"], f"{name}: widgets not drawn: {run.state['widgetErrors']} ({shot})"
    news = [t for t in run.state["toasts"] if re.search(r"news|update", t, re.IGNORECASE)]
    assert not news, f"{name}: JupyterLab shows {news} (make lab's settings should prevent it; {shot})"
    assert not lab.blocked, f"{name}: the page asked for other addresses than the lab: {lab.blocked}"
    prompts = run.state["prompts"]
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"{name}: not every cell ran: {describe(run.state)}"


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def shut_down_kernels(lab: Lab) -> None:
    """Frees the cores for the next notebook and the rest of the suite."""
    for session in lab.api("GET", "/api/sessions") or []:
        lab.api("DELETE", f"/api/sessions/{session['id']}")


def test_00_runs_in_jupyterlab_without_errors(lab, page, tmp_path):
    run = run_all_cells(page, lab, "00_fundamentals", tmp_path)
    try:
        assert_no_errors(run, lab, "00_fundamentals", page)
    finally:
        shut_down_kernels(lab)
    print(f"00_fundamentals: all cells in {run.seconds:.0f} s; screenshot {run.screenshot}")


def test_03_runs_in_jupyterlab_and_fit_shows_a_widget_bar(lab, page, tmp_path):
    name = "03_train"
    run = run_all_cells(page, lab, name, tmp_path)
    try:
        assert_no_errors(run, lab, name, page)
        bars = run.state["bars"]
        assert bars, (f"{name}: no ipywidgets progress bar (.widget-hprogress) in any output: fit showed no widget "
                      f"bar; stderr outputs: {[s['text'][:200] for s in run.state['stderr']]}; "
                      f"screenshot: {run.screenshot}")
        bar = page.locator(".jp-OutputArea-output .widget-hprogress").first
        bar.scroll_into_view_if_needed()
        output = page.locator(".jp-OutputArea-output", has=page.locator(".widget-hprogress")).first
        output.screenshot(path=str(tmp_path / f"{name}-progress-bar.png"))
        shoot(page, run.screenshot)
        for found in bars:
            assert found["shown"] and not found["danger"], f"{name}: progress bar {found} ({run.screenshot})"
            assert found["width"] == "100%" and re.search(r"100%.*\b(\d+)/\1\b", found["label"]), (
                f"{name}: a progress bar did not reach the end: {found} ({run.screenshot})")
    finally:
        shut_down_kernels(lab)
    print(f"{name}: all cells in {run.seconds:.0f} s; bars {[b['label'] for b in bars]}; "
          f"screenshots {run.screenshot}, {tmp_path / f'{name}-progress-bar.png'}")
