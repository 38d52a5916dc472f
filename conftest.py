"""Root conftest for nbval (a conftest in tests/ has no effect on notebook collection).

Warnings on stderr differ between machines and library versions; only the
stdout and results of cells marked ``# NBVAL_CHECK_OUTPUT`` are compared.
"""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
