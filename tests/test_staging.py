"""helpers.staging: generated folders replaced whole, and never a file the helper did not write."""

from __future__ import annotations

import json
import os
import stat

import pytest

from helpers.staging import read_marker, replace_folder


def write_two(folder):
    (folder / "sub").mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")


def test_the_marker_lists_the_settings_and_every_file_written(tmp_path):
    folder = replace_folder(tmp_path / "made", "made.json", {"seed": 1}, write_two, "maker")
    assert read_marker(folder, "made.json") == ({"seed": 1}, ["a.txt", "sub/b.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"], "no staging folder left behind"


def test_same_settings_reuse_the_folder_other_settings_replace_it(tmp_path):
    folder = replace_folder(tmp_path / "made", "made.json", {"seed": 1}, write_two, "maker")
    replace_folder(folder, "made.json", {"seed": 1}, lambda f: pytest.fail("written again"), "maker")
    replace_folder(folder, "made.json", {"seed": 2}, lambda f: (f / "c.txt").write_text("c"), "maker")
    assert sorted(p.name for p in folder.iterdir()) == ["c.txt", "made.json"]


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_file_the_helper_did_not_write_is_never_deleted(tmp_path, where):
    folder = replace_folder(tmp_path / "made", "made.json", {"seed": 1}, write_two, "maker")
    mine = folder / "my_own.png" if where == "top" else folder / "sub" / "my_own.png"
    mine.write_text("mine")
    with pytest.raises(FileExistsError, match=r"made holds (sub/)?my_own\.png that maker did not write, so nothing "
                                              r"in it is deleted: move your files elsewhere, or choose another folder"):
        replace_folder(folder, "made.json", {"seed": 2}, write_two, "maker")
    assert mine.read_text() == "mine" and (folder / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]


def test_files_named_like_the_helpers_own_are_replaced_with_the_folder(tmp_path):
    folder = replace_folder(tmp_path / "run", "run.json", {}, lambda f: None, "maker", reuse=False,
                            also_ours=("events.*",))
    (folder / "events.1").write_text("old curve")
    replace_folder(folder, "run.json", {}, lambda f: None, "maker", reuse=False, also_ours=("events.*",))
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_a_marker_with_settings_only_counts_the_files_those_settings_make(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    write_two(folder)
    (folder / "made.json").write_text(json.dumps({"seed": 1}))
    assert read_marker(folder, "made.json") == ({"seed": 1}, None)
    with pytest.raises(FileExistsError, match="old holds a.txt and 1 more file"):
        replace_folder(folder, "made.json", {"seed": 2}, write_two, "maker")
    replace_folder(folder, "made.json", {"seed": 2}, write_two, "maker",
                   legacy_files=lambda settings: ["a.txt", "sub/b.txt"])
    assert read_marker(folder, "made.json") == ({"seed": 2}, ["a.txt", "sub/b.txt"])


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_folder_without_the_marker_or_a_file_is_refused(tmp_path, kind):
    path = tmp_path / "yours"
    if kind == "file":
        path.write_text("mine")
    else:
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"yours already exists and was not made by maker \((no made\.json in "
                                              r"it|it is not a folder)\), so it is left alone: choose another folder"):
        replace_folder(path, "made.json", {}, write_two, "maker")
    assert (path if kind == "file" else path / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "empty" / "nothing").mkdir(parents=True)
    replace_folder(tmp_path / "empty", "made.json", {}, write_two, "maker")
    assert (tmp_path / "empty" / "sub" / "b.txt").read_text() == "b"


def test_a_failing_write_leaves_the_earlier_folder_and_no_staging_folder(tmp_path):
    folder = replace_folder(tmp_path / "made", "made.json", {"seed": 1}, write_two, "maker")

    def broken(staging):
        (staging / "half").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_folder(folder, "made.json", {"seed": 2}, broken, "maker")
    assert read_marker(folder, "made.json") == ({"seed": 1}, ["a.txt", "sub/b.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_generated_folders_get_the_mode_the_umask_gives_new_folders(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        folder = replace_folder(tmp_path / "made", "made.json", {}, write_two, "maker")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == mode
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == mode
