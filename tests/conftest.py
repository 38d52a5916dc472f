"""Fixtures of the notebook tests: each ``tests/test_nb_NN.py`` names its notebook in ``NAME``.

Every prose claim is asserted on two runs: the committed notebook's records, and a learner's rerun with
another seed set (``perturbed``). Tests ask for ``records`` (or ``text``, what a run printed) and run once
for each; the rerun is made once per module, when a test first needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.nbrun import claim_records, claim_text, execute_perturbed


@pytest.fixture(scope="module")
def perturbed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A learner's rerun of the module's notebook (machine's thread count, CPU) with another seed set: its
    records and its folder (the executed notebook, and the notebook's runs in ``runs/``)."""
    name = request.module.NAME
    folder = tmp_path_factory.mktemp(f"nb{name[:2]}")
    return execute_perturbed(name, folder), folder


@pytest.fixture(scope="module", params=["committed", "perturbed"])
def records(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The committed run's records, then the rerun's."""
    return claim_records(request, request.module.NAME)


@pytest.fixture(scope="module", params=["committed", "perturbed"])
def text(request: pytest.FixtureRequest) -> str:
    """What the committed run printed, then what the rerun printed."""
    return claim_text(request, request.module.NAME)
