"""Installs the network guard in every Python process of a test run (see course_netguard.py).

Python imports ``sitecustomize`` at start-up from the first folder on ``sys.path``
that has one; the root conftest.py puts this folder first on ``PYTHONPATH`` for the
run, so Jupyter kernels, torchrun workers and other subprocesses import this file.
A ``sitecustomize`` further down ``sys.path`` (some Linux distributions ship one)
would be hidden by this one, so it is run afterwards.
"""

import os
import sys


def _run_next_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if os.environ.get("COURSE_NETGUARD_LOG"):
    import course_netguard

    course_netguard.install()
_run_next_sitecustomize()
