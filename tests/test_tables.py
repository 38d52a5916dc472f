"""helpers.tables.format_table: the one plain-text table formatter of the course."""

from __future__ import annotations

import pytest

from helpers.tables import format_table


def test_default_alignment_is_names_left_and_numbers_right():
    table = format_table(["model", "acc"], [["mlp", "95.5%"], ["tinyvgg", "97.0%"]])
    assert table == (
        "model      acc\n"
        "-------  -----\n"
        "mlp      95.5%\n"
        "tinyvgg  97.0%"
    )


def test_each_column_is_as_wide_as_its_widest_cell_header_included():
    table = format_table(["a", "a long header", "n"], [["xyz", 1, 12345], ["q", 22, 7]], align="lrr")
    lines = table.splitlines()
    assert lines[1] == "---  -------------  -----"  # widths 3 (a cell), 13 (the header), 5 (a cell)
    assert lines[0] == "a    a long header      n"
    assert lines[2] == "xyz              1  12345"
    assert lines[3] == "q               22      7"
    assert {len(line) for line in lines} == {3 + 2 + 13 + 2 + 5}


def test_explicit_alignment_per_column_and_no_trailing_spaces():
    table = format_table(["name", "count", "device"], [["a", 3, "cpu"], ["bbbbbb", 10, "cuda:0"]], align="rll")
    assert table.splitlines() == [
        "  name  count  device",
        "------  -----  ------",
        "     a  3      cpu",  # the last column is left-aligned: its padding is stripped
        "bbbbbb  10     cuda:0",
    ]


def test_missing_align_letters_default_to_right_after_the_first_column():
    rows = [["x", "1", "2"]]
    assert format_table(["c0", "c1", "c2"], rows, align="l") == format_table(["c0", "c1", "c2"], rows, align="lrr")
    assert format_table(["c0", "c1", "c2"], rows, align="r") == format_table(["c0", "c1", "c2"], rows, align="rrr")
    assert format_table(["c0", "c1", "c2"], rows).splitlines()[2] == "x    1   2"


def test_cells_are_printed_with_str_and_a_table_may_have_no_rows():
    assert format_table(["value", "ok"], [[0.25, True], [None, 3]]).splitlines()[2:] == [
        "0.25   True", "None      3"]
    assert format_table(["model", "acc"], []) == "model  acc\n-----  ---"


@pytest.mark.parametrize("row", [["only one"], ["a", "b", "c"]])
def test_a_row_with_the_wrong_number_of_cells_is_refused(row):
    with pytest.raises(ValueError, match=r"every row needs 2 cells, one per header: \['model', 'acc'\]"):
        format_table(["model", "acc"], [["ok", "1"], row])


@pytest.mark.parametrize("align", ["lc", "x", "lrl", "L", "l r"])
def test_bad_align_is_refused_naming_the_value(align):
    with pytest.raises(ValueError, match=rf"align needs at most 2 letters, each 'l' or 'r', got {align!r}"):
        format_table(["model", "acc"], [["mlp", "1"]], align=align)
