"""Validation of notebook parameters (introduced in 00_fundamentals).

Every notebook validates its ``parameters`` cell with one call to
:func:`check_params` before it writes anything. A bad value raises
:class:`ParameterError` whose message names the parameter, the value given and
what is allowed. The command-line script of 10_going_further (``helpers.train``) takes
its options from one table, :func:`build_parser`, checked by the same rules with
:func:`check_options`.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ParameterError", "build_parser", "check_options", "check_params", "parse_value"]


class ParameterError(ValueError):
    """A notebook parameter has a value that is not allowed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float; an int too large to become a float (``10**400``) is not one."""
    if _is_int(value):
        return abs(value) <= sys.float_info.max  # compared exactly: no conversion, no OverflowError
    return isinstance(value, float) and math.isfinite(value)


def _shown(value: Any) -> str:
    """``repr(value)``, but a huge whole number by its size: its digits could fill the screen, or not print."""
    if _is_int(value) and value.bit_length() > 64:
        return f"a whole number of about {round(value.bit_length() * math.log10(2))} digits"
    return repr(value)


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value > 0 else "must be a whole number greater than 0, such as 10"


def _non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "must be a whole number of 0 or more, such as 42"


def _positive_number(value: Any) -> str | None:
    if _is_number(value) and value > 0:
        return None
    return "must be a number greater than 0, such as 0.01 (a number, not text)"


def _fraction(value: Any) -> str | None:
    if _is_number(value) and 0 < value < 1:
        return None
    return "must be a number strictly between 0 and 1, such as 0.2"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be text (a path such as 'runs'), or '' for the default"


# Rules by parameter name, shared by every notebook so the same name means the same thing.
RULES: dict[str, Callable[[Any], str | None]] = {
    "EPOCHS": _positive_int,
    "LINE_EPOCHS": _positive_int,
    "BATCH_SIZE": _positive_int,
    "HIDDEN_UNITS": _positive_int,
    "IMAGE_SIZE": lambda v: None if _is_int(v) and v >= 8 else "must be a whole number of 8 or more, such as 32",
    "N_SAMPLES": _positive_int,
    "IMAGES_PER_CLASS": _positive_int,
    "LABELLED_PER_CLASS": _positive_int,
    "SEEDS": _positive_int,
    "RESUME_AFTER": _positive_int,
    "NUM_WORKERS": _non_negative_int,
    "SEED": _non_negative_int,
    "LEARNING_RATE": _positive_number,
    "LINE_LEARNING_RATE": _positive_number,
    "NOISE": lambda v: None if _is_number(v) and v >= 0 else "must be a number of 0 or more, such as 0.1",
    "TEST_FRACTION": _fraction,
    "VAL_FRACTION": _fraction,
    "LABELLED_FRACTION": _fraction,
    "SMOKE": _boolean,
    "DOWNLOAD": _boolean,
    "COMPILE": _boolean,
    "PROCESSES": _positive_int,
    "RUNS_DIR": _text,
    "DATA_DIR": _text,
    "IMAGE_DIR": _text,
}


def check_params(values: Mapping[str, Any], choices: Mapping[str, Iterable[Any]] | None = None) -> None:
    """Check notebook parameters by name; raise :class:`ParameterError` on the first bad one.

    ``values`` maps UPPER_CASE parameter names to their values. Names listed in
    ``choices`` must take one of the given values; the others follow the rules
    for their name (``EPOCHS`` a positive whole number, ``LEARNING_RATE`` a
    positive number, ``SMOKE`` a bool, ...).

    >>> check_params({"EPOCHS": 5, "DATASET": "digits"}, choices={"DATASET": ["digits"]})
    >>> check_params({"EPOCHS": 0})
    Traceback (most recent call last):
    ...
    helpers.params.ParameterError: EPOCHS = 0 is not allowed: must be a whole number greater than 0, ...
    """
    choices = {name: list(allowed) for name, allowed in (choices or {}).items()}
    for name, value in values.items():
        if name in choices:
            allowed = choices[name]
            if not any(type(a) is type(value) and a == value for a in allowed):  # True is not 1
                listed = ", ".join(repr(a) for a in allowed)
                raise ParameterError(f"{name} = {_shown(value)} is not allowed: choose one of {listed}.")
            continue
        if name not in RULES:
            raise KeyError(f"no rule for parameter {name!r}: pass its allowed values in choices=")
        problem = RULES[name](value)
        if problem:
            raise ParameterError(f"{name} = {_shown(value)} is not allowed: {problem}.")


def parse_value(text: str) -> Any:
    """A value typed on a command line, read as papermill reads ``-p``: a Python literal where possible.

    ``"5"`` -> 5, ``"0.003"`` -> 0.003, ``"True"`` -> True, ``"'mlp'"`` -> 'mlp'; anything else stays
    text, so :func:`check_params` can name the problem.

    >>> parse_value("5"), parse_value("0.003"), parse_value("ten")
    (5, 0.003, 'ten')
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


# option: (metavar, parse as a literal?, default, help, the notebook parameter whose rule it follows)
OPTIONS: dict[str, tuple[str, bool, Any, str, str]] = {
    "dataset": ("NAME", False, "digits", "data set: 'digits' (offline)", "DATASET"),
    "model": ("NAME", False, "tinyvgg", "'tinyvgg' (small CNN) or 'mlp'", "MODEL"),
    "hidden_units": ("N", True, 16, "width of the model", "HIDDEN_UNITS"),
    "epochs": ("N", True, 5, "passes over the training data", "EPOCHS"),
    "batch_size": ("N", True, 64, "examples per training step, over all processes together", "BATCH_SIZE"),
    "lr": ("RATE", True, 0.003, "Adam's learning rate", "LEARNING_RATE"),
    "seed": ("N", True, 42, "seed for split, weights, shuffling", "SEED"),
    "device": ("NAME", False, "auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; under torchrun 'cuda' means "
               "one GPU per process, cuda:LOCAL_RANK", "DEVICE"),
    "out": ("DIR", False, "", "output folder ('' means runs/train in the project); only process 0 writes",
            "RUNS_DIR"),
}


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command-line options of the training script (10_going_further), one per entry of ``OPTIONS``.

    Values stay unchecked here (numbers are parsed with :func:`parse_value`); :func:`check_options`
    checks them.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, (metavar, literal, default, help_text, _) in OPTIONS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", metavar=metavar, type=parse_value if literal else str,
            default=default, help=help_text,
        )
    return parser


def check_options(args: argparse.Namespace, choices: Mapping[str, Iterable[Any]]) -> None:
    """Check each option of :func:`build_parser` by its notebook parameter's rule.

    ``choices`` gives the allowed values of the parameters that take a choice
    (``{"DATASET": ["digits"], "MODEL": ["tinyvgg", "mlp"]}``). The device is
    checked where it is resolved (``get_device``). A bad value raises
    :class:`ParameterError` naming the option (``--epochs: EPOCHS = 0 is not allowed: ...``).
    """
    for option, (*_, name) in OPTIONS.items():
        if name == "DEVICE":
            continue
        only = {name: choices[name]} if name in choices else {}
        try:
            check_params({name: getattr(args, option)}, choices=only)
        except ParameterError as error:
            raise ParameterError(f"--{option.replace('_', '-')}: {error}") from None
