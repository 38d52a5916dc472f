"""`import helpers` is light and every re-exported name resolves to its module's public object."""

import importlib
import subprocess
import sys

import pytest

import helpers


@pytest.mark.parametrize("name", helpers.__all__)
def test_every_exported_name_resolves(name):
    module = importlib.import_module(f"helpers.{helpers._WHERE[name]}")
    assert name in module.__all__
    assert getattr(helpers, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'fitt'"):
        helpers.fitt  # noqa: B018


def test_import_loads_no_submodule_and_touches_no_device():
    code = ("import sys, helpers; "
            "print(sorted(m for m in sys.modules if m.startswith('helpers.') or m in "
            "('torch', 'matplotlib', 'sklearn', 'papermill')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
