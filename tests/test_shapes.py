"""helpers.shapes: the generated shapes image folders (07, 08)."""

import hashlib
import json
import os
import stat

import pytest

from helpers import shapes
from helpers.shapes import SHAPE_CLASSES, make_shapes, shapes_folder


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_train_and_test_folders_per_class(tmp_path):
    root = make_shapes(tmp_path / "shapes", images_per_class=4, image_size=8, seed=1)
    for split, per_class in (("test", 1), ("train", 3)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(SHAPE_CLASSES)
        assert all(len(list((root / split / kind).glob("*.png"))) == per_class for kind in SHAPE_CLASSES)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = digest(make_shapes(tmp_path / "a", images_per_class=3, image_size=8, seed=5))
    b = digest(make_shapes(tmp_path / "b", images_per_class=3, image_size=8, seed=5))
    c = digest(make_shapes(tmp_path / "c", images_per_class=3, image_size=8, seed=6))
    assert a == b
    assert {k: v for k, v in a.items() if k.endswith(".png")} != {k: v for k, v in c.items() if k.endswith(".png")}


def test_an_existing_set_with_the_same_arguments_is_reused_untouched(tmp_path, monkeypatch):
    root = make_shapes(tmp_path / "shapes", images_per_class=3, image_size=8)
    monkeypatch.setattr(shapes, "_write_shapes", lambda *a: pytest.fail("the set was written again"))
    assert make_shapes(root, images_per_class=3, image_size=8) == root


def test_other_arguments_replace_our_own_earlier_set(tmp_path):
    root = make_shapes(tmp_path / "shapes", images_per_class=3, image_size=8)
    make_shapes(root, images_per_class=2, image_size=8)
    assert len(list(root.glob("*/circle/*.png"))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no staging folder left behind


def test_another_seed_never_deletes_an_image_you_added_to_the_set(tmp_path):
    root = make_shapes(tmp_path / "shapes", images_per_class=2, image_size=8, seed=0)
    before = digest(root)
    (root / "train" / "circle" / "my_own.png").write_bytes(b"a learner's image")
    with pytest.raises(FileExistsError, match=r"holds train/circle/my_own\.png that make_shapes did not write"):
        make_shapes(root, images_per_class=2, image_size=8, seed=1)
    assert (root / "train" / "circle" / "my_own.png").read_bytes() == b"a learner's image"
    assert {k: v for k, v in digest(root).items() if "my_own" not in k} == before


def test_a_set_made_before_the_marker_listed_its_files_is_still_ours(tmp_path):
    root = make_shapes(tmp_path / "shapes", images_per_class=2, image_size=8, seed=0)
    settings = json.loads((root / "shapes.json").read_text())["settings"]
    (root / "shapes.json").write_text(json.dumps(settings))  # the marker as the course wrote it before
    assert make_shapes(root, images_per_class=2, image_size=8, seed=0) == root  # reused
    make_shapes(root, images_per_class=2, image_size=8, seed=1)  # replaced: every file was the set's
    assert json.loads((root / "shapes.json").read_text())["settings"]["seed"] == 1


@pytest.mark.parametrize("mask, mode", [(0o022, 0o755), (0o077, 0o700)])
def test_the_set_gets_the_folder_mode_the_umask_gives(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        root = make_shapes(tmp_path / "shapes", images_per_class=2, image_size=8)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")] if p.is_dir()} == {mode}


def test_the_folder_name_holds_every_setting(tmp_path):
    assert shapes_folder(tmp_path, 300, 32, seed=42) == tmp_path / "shapes_32px_300each_test0.25_seed42"
    names = {shapes_folder(tmp_path, *args).name for args in
             [(300, 32, 42), (300, 32, 43), (301, 32, 42), (300, 16, 42), (300, 32, 42, 0.3)]}
    assert len(names) == 5


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "shapes").mkdir()
    assert (make_shapes(tmp_path / "shapes", images_per_class=2, image_size=8) / "shapes.json").is_file()


@pytest.mark.parametrize("foreign", ["file", "folder-with-a-file", "plain-file"])
def test_a_folder_it_did_not_make_is_refused_and_kept(tmp_path, foreign):
    root = tmp_path / "shapes"
    if foreign == "plain-file":
        root.write_text("mine")
        keep = root
    else:
        root.mkdir()
        keep = root / "notes.txt" if foreign == "file" else root / "sub" / "notes.txt"
        keep.parent.mkdir(exist_ok=True)
        keep.write_text("mine")
    with pytest.raises(FileExistsError, match=r"was not made by make_shapes.*choose another folder"):
        make_shapes(root, images_per_class=2, image_size=8)
    assert keep.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"]


def test_an_interrupted_run_leaves_the_earlier_set_and_no_partial_folder(tmp_path, monkeypatch):
    root = make_shapes(tmp_path / "shapes", images_per_class=2, image_size=8)
    before = digest(root)

    def broken(kind, image_size, rng):
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "draw_shape", broken)
    with pytest.raises(KeyboardInterrupt):
        make_shapes(root, images_per_class=3, image_size=8)
    assert digest(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="images_per_class >= 2"):
        make_shapes(tmp_path / "s", images_per_class=1)
