# Thin wrappers; see README.md. PYTHON picks the interpreter that creates .venv.
PYTHON ?= python3
SHELL := bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2

# JupyterLab on notebooks/ without the "news" prompt, news feed and update check (they would go online):
# the prompt's answer (Never) as a default in the venv's JupyterLab settings, written by make setup, so a
# plain .venv/bin/jupyter lab does not ask either, and server flags that switch the feed and the check off.
# tests/test_browser.py reads LAB_OVERRIDES and LAB_FLAGS from here and starts its lab with them.
LAB_OVERRIDES := {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
LAB_FLAGS := --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/pytorch-course.json

.PHONY: setup run test lab site notebooks lint bench clean

setup: $(STAMP) $(LAB_SETTINGS)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed: run make PYTHON=python3.12 (or another 3.10+ interpreter)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the project and its pinned dependencies into $(VENV) (a few minutes the first time) ..."
	@# pip's output goes to a log, shown only when the install fails
	@$(PY) -m pip install --disable-pip-version-check -c constraints.txt -e ".[dev,site]" \
		> $(VENV)/install.log 2>&1 \
		|| { tail -n 40 $(VENV)/install.log; echo "make setup: pip failed (whole log: $(VENV)/install.log)"; exit 1; }
	@touch $(STAMP)

run: setup
	@$(PY) -m helpers.series $(ARGS)

# JOBS workers run notebooks side by side; one thread each keeps them from fighting over the cores.
# -rfEs: the summary names failures, errors and skip reasons (the browser test without Chromium, GPU tests).
test: setup
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -rfEs -n $(JOBS) --dist loadscope $(ARGS)

$(LAB_SETTINGS): $(STAMP) Makefile
	@mkdir -p $(@D)
	@printf '%s\n' '$(LAB_OVERRIDES)' > $@

lab: setup
	@$(VENV)/bin/jupyter lab $(LAB_FLAGS) $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

# The course site from the committed notebooks, never executed (sources in site/, see site/conf.py), into
# $(SITE_DIR)/html; open $(SITE_DIR)/html/index.html, or serve the folder. -W: a warning (a broken link or
# reference, an output it cannot show) fails the build; --keep-going lists them all first.
# tests/test_site.py reads SITE_FLAGS from here and builds the site the same way.
SITE_DIR := build/site
SITE_FLAGS := -b html -q -W --keep-going
site: setup
	@$(PY) -m sphinx $(SITE_FLAGS) -d $(SITE_DIR)/doctrees site $(SITE_DIR)/html
	@echo "the course site: $(SITE_DIR)/html/index.html"

# Re-execute the committed notebooks in place (default parameters, CPU), keeping outputs, and rerun each
# numbered notebook with 5 other seeds to record how far its numbers move (the tests' bands); ARGS="--no-spread"
# skips the reruns. One thread, as in make test, so a rerun on this machine gives the committed numbers.
notebooks: setup
	@OMP_NUM_THREADS=1 $(PY) -m helpers.series --refresh $(ARGS)

lint: setup
	@$(PY) -m ruff check helpers tests notebooks benchmarks
	@$(PY) -m pytest -q tests/test_notebook_lint.py tests/test_environment.py

# Side-by-side speed of the training loop (see benchmarks/README.md); ARGS="--device cuda" on a GPU.
bench: setup
	@$(PY) -c 'import lightning' 2>/dev/null || { echo "installing Lightning, used only by the benchmark ..."; \
		$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[bench]"; }
	@$(PY) benchmarks/bench_training.py $(ARGS)

clean:
	rm -rf runs .pytest_cache build/site
