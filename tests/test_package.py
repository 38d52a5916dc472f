"""`import helpers` is light, and every module's public names are typed and documented."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import helpers

MODULES = sorted(info.name for info in pkgutil.iter_modules(helpers.__path__))


def test_the_package_docstring_lists_every_module_and_nothing_else():
    lines = helpers.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    listed = {line.split()[0] for line in lines[rules[1] + 1:rules[2]]}  # rows: between the 2nd and 3rd rule
    assert listed == set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_is_typed_and_documented(name):
    module = importlib.import_module(f"helpers.{name}")
    assert module.__doc__, f"helpers.{name} has no docstring"
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            assert obj.__doc__, f"helpers.{name}.{public} has no docstring"
            hints = inspect.signature(obj)
            assert hints.return_annotation is not inspect.Signature.empty, f"{name}.{public} has no return type"
            untyped = [p for p in hints.parameters.values() if p.annotation is inspect.Parameter.empty]
            assert not untyped, f"helpers.{name}.{public}: parameters without a type: {untyped}"


def test_import_loads_no_submodule_and_touches_no_device():
    code = ("import sys, helpers; "
            "print(sorted(m for m in sys.modules if m.startswith('helpers.') or m in "
            "('torch', 'matplotlib', 'sklearn', 'papermill')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
