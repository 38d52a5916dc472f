"""The course site (``make site``) in a real browser: every page loads clean, links resolve, search finds 03.

The site is built once for this module into a temporary folder, with the flags ``make site`` uses (read
from the Makefile), from ``site/`` and the committed notebooks, never executed. A web server on
127.0.0.1 serves the built folder, and Debian's Chromium, driven by Playwright (as in
``tests/test_browser.py``), opens every page once and reads it: console errors and uncaught exceptions,
images that did not load, every link, the previous/next links, the page's table of contents, the
download link and the link from a notebook's exercises to its solutions. Search runs in the page from the
built files alone (``searchindex.js``), over the server and from ``file://`` without one (there the result
list works and only the text snippets under the results, which Sphinx fetches, are missing). Chromium may talk
to the server only: every request elsewhere is refused and fails the test, so a page that needs the
internet (a CDN script, a web font) fails here. Screenshots go to the test's temporary folder.

Skipped, with the reason in the short test summary, where ``/usr/bin/chromium``, Playwright or the site
extra (Sphinx, MyST-NB, the book theme: ``pip install -e ".[site]"``, which ``make setup`` does) is missing.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, makefile_value

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
RECORD_MIME = "application/vnd.pytorch-course.record+json"  # helpers.records: shown nowhere, by design
SITE_EXTRA = ("sphinx", "myst_nb", "sphinx_book_theme", "jupyter_server_mathjax")
BUILD_TIMEOUT_S = 300
PAGE_TIMEOUT_S = 60

# Everything one page tells, read in one go after it loaded.
PAGE_JS = """() => {
  const attr = (selector, name) => [...document.querySelectorAll(selector)].map((el) => el.getAttribute(name));
  return {
    title: document.title,
    brokenImages: [...document.images].filter((img) => !img.complete || img.naturalWidth === 0)
        .map((img) => img.getAttribute('src')),
    images: document.images.length,
    links: [...document.querySelectorAll('a[href]')].map((a) => a.href),
    results: [...document.querySelectorAll('ul.search li a')].map((a) => a.href),
    prev: attr('.prev-next-area a.left-prev', 'href'),
    next: attr('.prev-next-area a.right-next', 'href'),
    toc: [...document.querySelectorAll('#pst-page-toc-nav a.nav-link')].map((a) => a.textContent.trim()),
    downloads: attr('a.btn[href*="_sources/"]', 'href'),
    solutions: attr('section#exercises a[href]', 'href'),
    math: document.querySelectorAll('span.math, div.math').length,
    mathShown: document.querySelectorAll('.MathJax').length,
  };
}"""


def missing_site_extra() -> list[str]:
    """The site extra's modules that cannot be imported here."""
    missing = []
    for name in SITE_EXTRA:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


@dataclass
class Site:
    root: Path  # the built html folder
    seconds: float
    megabytes: float


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """The site, built with ``make site``'s flags into a temporary folder (warnings fail the build)."""
    if missing := missing_site_extra():
        pytest.skip(f"the site extra is not installed ({', '.join(missing)}): pip install -e '.[site]'")
    out = tmp_path_factory.mktemp("site")
    flags = shlex.split(makefile_value("SITE_FLAGS"))
    command = [sys.executable, "-m", "sphinx", *flags, "-d", str(out / "doctrees"), str(ROOT / "site"),
               str(out / "html")]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=out)
    seconds = time.monotonic() - started
    assert done.returncode == 0, (f"the site build failed ({shlex.join(command)}):\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    root = out / "html"
    megabytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    print(f"site built in {seconds:.1f} s, {megabytes:.1f} MiB: {root}")
    return Site(root=root, seconds=seconds, megabytes=megabytes)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the name the base class uses
        """No line per request on stderr."""


@pytest.fixture(scope="module")
def server(site: Site) -> str:
    """The built folder over HTTP on 127.0.0.1 (a free port); yields its base URL, ending with ``/``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site.root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Browser:
    context: object
    blocked: list[str] = field(default_factory=list)  # requests to anything but the server, refused


@pytest.fixture(scope="module")
def browser(server: str, tmp_path_factory) -> Browser:
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: make setup installs it (dev extra)")
    found = Browser(context=None)

    def only_the_site(route) -> None:
        url = route.request.url
        if url.startswith((server, "data:", "blob:", "file:")):
            route.continue_()
        else:
            found.blocked.append(url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        found.context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000},
            # the suite's FONTCONFIG_FILE lists no fonts (for matplotlib); Chromium needs the system's
            env={name: value for name, value in os.environ.items() if name != "FONTCONFIG_FILE"},
        )
        found.context.route("**/*", only_the_site)
        try:
            yield found
        finally:
            found.context.close()


@dataclass
class Page:
    url: str
    state: dict
    console_errors: list[str]


@dataclass
class Crawl:
    pages: dict[str, Page]  # by path inside the site, e.g. "notebooks/03_train.html"
    seconds: float
    shots: Path


def open_page(context, url: str, wait_for: str | None = None) -> Page:
    """Load ``url`` in a new tab, wait until the network is quiet (and for ``wait_for``), read the page."""
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    try:
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        if wait_for:
            page.locator(wait_for).first.wait_for()
        return Page(url=url, state=page.evaluate(PAGE_JS), console_errors=errors)
    finally:
        page.close()


@pytest.fixture(scope="module")
def crawl(site: Site, server: str, browser: Browser, tmp_path_factory) -> Crawl:
    """Every HTML page of the site, opened once in Chromium; the 03 page also as a screenshot."""
    shots = tmp_path_factory.mktemp("site-shots")
    pages = {}
    started = time.monotonic()
    for path in sorted(site.root.rglob("*.html")):
        name = path.relative_to(site.root).as_posix()
        if name.startswith("_static/"):
            continue  # the themes' template fragments, not pages
        wait_for = ".MathJax" if name == "notebooks/00_fundamentals.html" else None  # 00 has math
        pages[name] = open_page(browser.context, server + name, wait_for)
    page = browser.context.new_page()
    page.goto(server + "notebooks/03_train.html", wait_until="networkidle")
    page.screenshot(path=str(shots / "03_train.png"))
    page.close()
    seconds = time.monotonic() - started
    print(f"{len(pages)} pages opened in {seconds:.1f} s; screenshot of 03: {shots / '03_train.png'}")
    return Crawl(pages=pages, seconds=seconds, shots=shots)


def page_name(url: str, server: str) -> str:
    """``notebooks/03_train.html`` for a URL of the site."""
    assert url.startswith(server), f"{url} is not a page of the site"
    return unquote(urlsplit(url).path).lstrip("/")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """The ids that a built HTML file defines (link targets after ``#``)."""
    return frozenset(html.unescape(m) for m in re.findall(r'\bid="([^"]*)"', path.read_text(encoding="utf-8")))


def broken_link(url: str, server: str, root: Path) -> str | None:
    """Why an internal link does not resolve, or None when it does."""
    parts = urlsplit(url)
    target = root / unquote(parts.path).lstrip("/")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"no file {target.relative_to(root)}"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
        return f"no id {parts.fragment!r} in {target.relative_to(root)}"
    return None


# --- the checks ---------------------------------------------------------------------------------------


def test_every_notebook_output_has_a_form_the_site_shows():
    """The build hides only the recorded headline values (invisible in JupyterLab too), no other output."""
    from myst_nb.core.render import get_mime_priority

    if missing := missing_site_extra():
        pytest.skip(f"the site extra is not installed ({', '.join(missing)}): pip install -e '.[site]'")
    shown = set(get_mime_priority("html", ()))
    unshown = []
    for path in NOTEBOOKS + SOLUTIONS:
        for number, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            for output in cell.get("outputs", []):
                kinds = set(output.get("data", {}))
                if kinds and not kinds & shown and kinds != {RECORD_MIME}:
                    unshown.append(f"{path.name} cell {number}: {sorted(kinds)}")
    assert not unshown, "outputs the site cannot show (myst-nb renders none of their forms):\n" + "\n".join(unshown)


def test_the_site_has_every_notebook_and_solution(site: Site):
    expected = {f"notebooks/{p.stem}.html" for p in NOTEBOOKS}
    expected |= {f"notebooks/solutions/{p.stem}.html" for p in SOLUTIONS}
    expected |= {"index.html", "run-it-yourself.html", "search.html", "searchindex.js"}
    built = {p.relative_to(site.root).as_posix() for p in site.root.rglob("*") if p.is_file()}
    assert len(NOTEBOOKS) == 11 and len(SOLUTIONS) == 11
    assert expected <= built, f"missing from the built site: {sorted(expected - built)}"
    front = (site.root / "index.html").read_text(encoding="utf-8")
    assert "A runnable PyTorch course in numbered Jupyter notebooks" in front, "the README's introduction is missing"


def test_every_page_loads_without_console_errors_or_broken_images(crawl: Crawl, browser: Browser, site: Site):
    errors = {name: page.console_errors for name, page in crawl.pages.items() if page.console_errors}
    assert not errors, f"console errors: {json.dumps(errors, indent=1)}"
    broken = {name: page.state["brokenImages"] for name, page in crawl.pages.items() if page.state["brokenImages"]}
    assert not broken, f"images that did not load (naturalWidth 0): {broken}"
    assert not browser.blocked, f"pages asked for addresses other than the site (offline they fail): {browser.blocked}"
    assert crawl.pages["notebooks/03_train.html"].state["images"] >= 3, "03 shows its loss curves as images"
    zero = crawl.pages["notebooks/00_fundamentals.html"].state
    assert zero["math"] > 0 and zero["mathShown"] > 0, f"00's formulas are not typeset by MathJax: {zero}"
    print(f"site: build {site.seconds:.1f} s, {site.megabytes:.1f} MiB, {len(crawl.pages)} pages read in "
          f"{crawl.seconds:.1f} s; screenshot {crawl.shots / '03_train.png'}")


def test_every_internal_link_resolves(crawl: Crawl, server: str, site: Site):
    broken, checked = [], 0
    for name, page in crawl.pages.items():
        for url in page.state["links"]:
            if url.startswith(server):
                checked += 1
                if reason := broken_link(url, server, site.root):
                    broken.append(f"{name}: {url} ({reason})")
    assert checked > 500, f"only {checked} internal links found: the pages are not what this test expects"
    assert not broken, "internal links that lead nowhere:\n" + "\n".join(sorted(set(broken)))


def test_notebooks_in_order_with_contents_download_and_solutions(crawl: Crawl, server: str, site: Site):
    order = [f"notebooks/{p.stem}.html" for p in NOTEBOOKS]
    for number, name in enumerate(order):
        page = crawl.pages[name].state
        base = server + name
        if number > 0:
            assert [page_name(urljoin(base, p), server) for p in page["prev"]] == [order[number - 1]], (
                f"{name}: previous link {page['prev']}")
        if number < len(order) - 1:
            assert [page_name(urljoin(base, p), server) for p in page["next"]] == [order[number + 1]], (
                f"{name}: next link {page['next']}")
        assert len(page["toc"]) >= 3, f"{name}: the page's table of contents has {page['toc']}"
        assert "Exercises" in page["toc"], f"{name}: no Exercises in its table of contents {page['toc']}"
        solutions = [page_name(urljoin(base, p), server) for p in page["solutions"]]
        expected = f"notebooks/solutions/{Path(name).stem}_solutions.html"
        assert expected in solutions, f"{name}: its exercises do not link to {expected} (links there: {solutions})"
        downloads = [page_name(urljoin(base, p), server) for p in page["downloads"]]
        source = f"_sources/notebooks/{Path(name).stem}.ipynb"
        assert source in downloads, f"{name}: no download link to {source} (found {downloads})"
        notebook = json.loads((site.root / source).read_text(encoding="utf-8"))
        assert notebook["metadata"]["kernelspec"]["name"] == "python3" and notebook["cells"], source
    run_page = crawl.pages["run-it-yourself.html"].state
    assert run_page["toc"], "the run-it-yourself page has no table of contents"


@pytest.mark.parametrize("over", ["http", "file"])
def test_search_for_zero_grad_finds_03(over: str, server: str, site: Site, browser: Browser):
    """Sphinx's search runs in the page from searchindex.js: over the server and from the files alone."""
    base = server if over == "http" else site.root.as_uri() + "/"
    page = open_page(browser.context, base + "search.html?q=zero_grad", wait_for="ul.search li a")
    found = [url.removeprefix(base).split("#")[0] for url in page.state["results"]]
    assert "notebooks/03_train.html" in found, f"search for zero_grad over {over}: results {found}"
    errors = page.console_errors
    if over == "file":  # the result list works; the text snippets under it need a server (fetch of file:// fails)
        errors = [e for e in errors if not re.search(r"Access to fetch at 'file:.*CORS|ERR_FAILED|Failed to fetch", e)]
    assert not errors, f"search over {over}: console errors {errors}"


def test_broken_link_finds_missing_files_and_anchors(tmp_path):
    """The link check itself: a missing page and a missing id are reported, a good link is not."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "a.html").write_text('<h2 id="exercises">Exercises</h2>', encoding="utf-8")
    server = "http://127.0.0.1:1/"
    assert broken_link(server + "notebooks/a.html#exercises", server, tmp_path) is None
    assert broken_link(server + "notebooks/a.html#summary", server, tmp_path) == "no id 'summary' in notebooks/a.html"
    assert broken_link(server + "notebooks/b.html", server, tmp_path) == "no file notebooks/b.html"
