"""Sphinx configuration of the course site (``make site``): the committed notebooks as they are, never executed.

The pages are ``index.md`` (the README's introduction), ``run-it-yourself.md``, the notebooks and their
solutions (``notebooks`` here is a link to the project's ``notebooks/`` folder). MyST-NB reads the notebooks
with their committed outputs; the Sphinx Book Theme gives the previous/next links, the table of contents of
each page, the search page and the button that downloads a page's ``.ipynb``. Everything the pages load
ships in the built folder (MathJax from the ``jupyter-server-mathjax`` package included), so the site works
offline, from a web server or straight from the files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jupyter_server_mathjax
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx

project = "PyTorch Workflow Notebooks"
author = "the course authors"
copyright = "the course authors"  # noqa: A001 - the name Sphinx reads

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["**/.ipynb_checkpoints", "_build", "jupyter_execute"]

# The committed outputs are the ones the prose describes: never execute.
nb_execution_mode = "off"
nb_merge_streams = True  # one output block per stream, as in JupyterLab
# The notebooks' recorded headline values (helpers.records, application/vnd.pytorch-course.record+json) show
# nothing in JupyterLab and nothing here; tests/test_site.py checks that every other output has a form
# MyST-NB shows, so this hides no other output.
RECORD_MIME = "application/vnd.pytorch-course.record+json"
suppress_warnings = ["mystnb.unknown_mime_type"]
myst_enable_extensions = ["dollarmath"]  # $x$ in the notebooks' markdown, as JupyterLab shows it
myst_heading_anchors = 3  # #-links to the headings of the notebooks and the README

html_theme = "sphinx_book_theme"
html_title = project
html_favicon = "_static/favicon.svg"  # without one, browsers ask for /favicon.ico and log its 404
html_copy_source = True  # _sources/<page>.ipynb: the download button's target
html_last_updated_fmt = None
html_context = {"default_mode": "auto"}  # light or dark as the reader's system; unset, a first visit logs an error
html_theme_options = {
    "use_download_button": True,  # .ipynb of each notebook page
    "use_fullscreen_button": False,
    "show_toc_level": 2,  # the page's own table of contents, on the right
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "navigation_with_keys": False,
}

# MathJax 2 from the jupyter-server-mathjax package, copied into _static/mathjax: no CDN, works offline.
# Its HTML-CSS output with the STIX-Web fonts the package ships; the probe font MathJax_Blank points to
# no file (MathJax's about:blank is a request Chromium refuses and logs as an error). MyST marks each page
# "ignore" and its formulas "math": tex2jax gets those classes here (myst_update_mathjax sets them for
# MathJax 3 and 4 only).
MATHJAX_SOURCE = Path(jupyter_server_mathjax.__file__).parent / "static"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "HTML-CSS": {
        "availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },
    "tex2jax": {"ignoreClass": "tex2jax_ignore|mathjax_ignore", "processClass": "tex2jax_process|mathjax_process|math"},
    "messageStyle": "none",
}

NOTEBOOK = re.compile(r"notebooks/(\d\d_\w+)")


def solutions_doc(docname: str) -> str | None:
    """``notebooks/solutions/NN_name_solutions`` for the notebook page ``notebooks/NN_name``, else ``None``."""
    match = NOTEBOOK.fullmatch(docname)
    return f"notebooks/solutions/{match.group(1)}_solutions" if match else None


def link_solutions(app: Sphinx, doctree: nodes.document) -> None:
    """Put a link to the worked solutions under each notebook's "Exercises" heading.

    The notebooks name their solutions file in prose only; on the site the link is added here, so the
    notebooks stay as they are. A notebook without an "Exercises" section or without a solutions page
    stops the build with a message naming it.
    """
    docname = app.env.docname
    target = solutions_doc(docname)
    if target is None:
        return
    if target not in app.env.found_docs:
        raise RuntimeError(f"{docname}: no solutions page {target}.ipynb for its exercises")
    for section in doctree.findall(nodes.section):
        if section[0].astext().strip() == "Exercises":
            link = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{target}",
                                         refexplicit=True, refdoc=docname)
            link += nodes.inline("", "the worked solutions")
            note = nodes.paragraph("", "Try them first, then compare with ")
            note += link
            note += nodes.Text(".")
            section.insert(1, note)
            return
    raise RuntimeError(f"{docname}: no section titled 'Exercises' to link its solutions from")


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """MathJax's files (without translations and speech maps) into ``_static/mathjax`` of the built site."""
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX_SOURCE, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("localization", "mathmaps"))


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", link_solutions)
    app.connect("build-finished", copy_mathjax)
