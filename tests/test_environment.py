"""environment.yml (conda) and pyproject.toml (pip) must list the same packages and bounds."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement  # a dependency of pytest itself

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10: the same parser, installed by the dev extra (never skip the check)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def split(requirement: str) -> tuple[str, str]:
    """Name and version bound of a requirement; an environment marker (``; python_version < '3.11'``) is dropped."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*([^;]*)", requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pyproject_requirements(extras: tuple[str, ...] = ("dev", "site")) -> dict[str, str]:
    """The dependencies plus the named extras; environment.yml holds the dependencies, the dev and the site extra."""
    requirements = project()["dependencies"] + sum((project()["optional-dependencies"][e] for e in extras), [])
    return dict(split(r) for r in requirements)


def conda_requirements() -> dict[str, str]:
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^  - ([^\s#]+)\s*(#.*)?$", line)
        if match and match.group(1) not in ("pip", "pip:"):
            name, bound = split(match.group(1))
            if name != "python":
                found[CONDA_NAMES.get(name, name)] = bound
    return found


def test_same_packages_and_bounds():
    assert conda_requirements() == pyproject_requirements()


def test_split_reads_name_and_bound_without_the_marker():
    assert split("scikit_learn >= 1.4") == ("scikit-learn", ">=1.4")
    assert split("tomli>=2.0; python_version < '3.11'") == ("tomli", ">=2.0")


def test_python_bound_matches():
    assert f"python{project()['requires-python']}" in (ROOT / "environment.yml").read_text()


def test_constraints_pin_every_direct_dependency_of_the_tested_python():
    text = (ROOT / "constraints.txt").read_text()
    tested = re.search(r"Python (3\.\d+)", text.splitlines()[0])  # "# Exact versions tested on ..., Python 3.11"
    assert tested, "the first line of constraints.txt must name the Python version it was frozen with"
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    requirements = project()["dependencies"] + sum(project()["optional-dependencies"].values(), [])
    needed = {split(r)[0] for r in requirements
              if Requirement(r).marker is None or Requirement(r).marker.evaluate({"python_version": tested[1]})}
    assert "torch" in needed and "pytest" in needed and "lightning" in needed  # every extra counts
    missing = needed - set(pins)
    assert not missing, f"constraints.txt lacks exact versions for {missing}"
