"""Recording a notebook's headline numbers so tests and ``make run`` can read them (00 onwards).

``record`` displays the values with a MIME type of its own; the executed
notebook file then carries them, and ``read_records`` reads them back without
running anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["RECORD_MIME", "read_records", "record"]

RECORD_MIME = "application/vnd.pytorch-course.record+json"

Value = float | int | str | bool


def _plain(value: Any) -> Value:
    """Turn tensors and NumPy scalars into plain Python values (JSON cannot hold them)."""
    if hasattr(value, "item"):
        value = value.item()
    if not isinstance(value, (float, int, str, bool)):
        raise TypeError(f"record() takes numbers, text or booleans, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"record() got a value that is not finite: {value}")
    return value


def record(headline: str | None = None, **values: Any) -> None:
    """Record named values; ``headline`` names the one ``make run`` shows in its summary.

    >>> record(headline="test_acc", test_acc=0.97, epochs=20)  # doctest: +SKIP
    """
    plain = {name: _plain(value) for name, value in values.items()}
    if headline is not None and headline not in plain:
        raise ValueError(f"headline {headline!r} is not one of the recorded names {sorted(plain)}")
    payload = {"values": plain, "headline": headline}
    try:
        from IPython.display import display
    except ImportError:  # outside Jupyter: nothing to show
        return
    text = "recorded: " + ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in plain.items()
    )
    display({RECORD_MIME: payload, "text/plain": text}, raw=True)


def read_records(notebook: str | Path) -> dict[str, Any]:
    """All values recorded in an executed notebook, plus ``"_headline"`` (the headline's name or None)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    found: dict[str, Any] = {"_headline": None}
    for cell in cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(RECORD_MIME)
            if payload:
                found.update(payload["values"])
                found["_headline"] = payload.get("headline") or found["_headline"]
    return found
