"""Validation of notebook parameters (introduced in 00_fundamentals).

Every notebook validates its ``parameters`` cell with one call to
:func:`check_params` before it writes anything. A bad value raises
:class:`ParameterError` whose message names the parameter, the value given and
what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ParameterError", "check_params"]


class ParameterError(ValueError):
    """A notebook parameter has a value that is not allowed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


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
                raise ParameterError(f"{name} = {value!r} is not allowed: choose one of {listed}.")
            continue
        if name not in RULES:
            raise KeyError(f"no rule for parameter {name!r}: pass its allowed values in choices=")
        problem = RULES[name](value)
        if problem:
            raise ParameterError(f"{name} = {value!r} is not allowed: {problem}.")
