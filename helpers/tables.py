"""Plain-text tables for results printed in notebooks and terminals (03_train onwards).

Every table in the course (model comparisons, experiment results, the ``make run``
summary, the benchmark) is made by :func:`format_table`, so they all look alike:
a header, a rule, one line per row, columns separated by two spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A plain-text table of ``rows`` (cells already formatted or printable) under ``header``.

    ``align`` has one letter per column, ``"l"`` (left) or ``"r"`` (right); missing
    letters mean left for the first column and right for the others (names, then numbers).

    >>> print(format_table(["model", "acc"], [["mlp", "95.5%"], ["tinyvgg", "97.0%"]]))
    model      acc
    -------  -----
    mlp      95.5%
    tinyvgg  97.0%
    """
    columns = len(header)
    if any(len(row) != columns for row in rows):
        raise ValueError(f"every row needs {columns} cells, one per header: {list(header)}")
    if align.strip("lr") or len(align) > columns:
        raise ValueError(f"align needs at most {columns} letters, each 'l' or 'r', got {align!r}")
    align += "".join("l" if i == 0 else "r" for i in range(len(align), columns))
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(columns)]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if a == "l" else cell.rjust(w)
                         for cell, w, a in zip(row, widths, align, strict=True)).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])
