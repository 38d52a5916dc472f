"""The hand-written ImageFolder and its errors (helpers.vision), and predict_image (helpers.engine), as in 08."""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS as TORCHVISION_EXTENSIONS
from torchvision.datasets.folder import make_dataset
from torchvision.transforms import v2

from helpers.engine import predict_image
from helpers.shapes import draw_shape, make_shapes
from helpers.vision import (
    IMG_EXTENSIONS,
    ImageFolderDataset,
    ImageFolderError,
    check_image_folder,
    find_classes,
    find_samples,
    load_image,
    split_image_folder,
)

TRANSFORM = v2.Compose([v2.Resize((16, 16)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("data") / "shapes", images_per_class=4, image_size=16, seed=3)


def assert_same_as_imagefolder(root: Path) -> None:
    ours = ImageFolderDataset(root, transform=TRANSFORM)
    theirs = datasets.ImageFolder(root, transform=TRANSFORM)
    assert ours.classes == theirs.classes
    assert ours.class_to_idx == theirs.class_to_idx
    assert [(str(path), label) for path, label in ours.samples] == theirs.samples
    assert ours.targets == theirs.targets
    assert len(ours) == len(theirs)
    for i in range(len(ours)):
        (x_ours, y_ours), (x_theirs, y_theirs) = ours[i], theirs[i]
        assert y_ours == y_theirs
        assert torch.equal(x_ours, x_theirs)


def test_same_samples_order_and_tensors_as_imagefolder(shapes_root):
    for split in ("train", "test"):
        assert_same_as_imagefolder(shapes_root / split)
    dataset = ImageFolderDataset(shapes_root / "train")
    assert dataset.classes == ["circle", "square", "triangle"]
    assert len(dataset) == 9  # 3 per class after 1 test image per class
    image, label = dataset[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 0


def test_same_as_imagefolder_with_nesting_modes_and_stray_files(tmp_path):
    rng = random.Random(0)
    for name in ("b_class", "a_class", "C_upper"):
        (tmp_path / name / "sub" / "deeper").mkdir(parents=True)
        (tmp_path / name / "sub-2").mkdir()  # os.walk sorted: sub, sub-2, sub/deeper ('-' < '/')
        draw_shape("square", 16, rng).save(tmp_path / name / "sub" / "deeper" / "d.webp")
        draw_shape("circle", 20, rng).save(tmp_path / name / "z.png")
        draw_shape("square", 12, rng).convert("L").save(tmp_path / name / "sub" / "a.PNG")
        draw_shape("triangle", 24, rng).convert("RGBA").save(tmp_path / name / "sub-2" / "m.png")
        draw_shape("circle", 8, rng).save(tmp_path / name / "B.jpg")
        (tmp_path / name / "notes.txt").write_text("not an image")
    (tmp_path / "readme.md").write_text("a file next to the class folders is ignored")
    assert_same_as_imagefolder(tmp_path)
    assert ImageFolderDataset(tmp_path).classes == ["C_upper", "a_class", "b_class"]


def test_find_samples_lists_what_torchvisions_make_dataset_lists(shapes_root):
    classes, class_to_idx = find_classes(shapes_root / "train")
    assert classes == ["circle", "square", "triangle"] and class_to_idx == {"circle": 0, "square": 1, "triangle": 2}
    ours = find_samples(shapes_root / "train", class_to_idx)
    theirs = make_dataset(str(shapes_root / "train"), class_to_idx, extensions=TORCHVISION_EXTENSIONS)
    assert [(str(path), label) for path, label in ours] == theirs
    assert [label for _, label in ours] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_extensions_match_torchvision():
    assert set(IMG_EXTENSIONS) == set(TORCHVISION_EXTENSIONS)


def test_dataset_can_be_pickled_for_worker_processes(shapes_root):
    dataset = ImageFolderDataset(shapes_root / "test", transform=TRANSFORM)
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.samples == dataset.samples
    assert torch.equal(copy[2][0], dataset[2][0])


def test_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(ImageFolderError, match=r"is empty: put one subfolder per class") as info:
        ImageFolderDataset(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_folder_with_only_other_files_has_no_class_subfolders(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ImageFolderError, match=r"has no class subfolders: put one subfolder per class"):
        find_classes(tmp_path)


def test_images_without_class_subfolders_say_to_move_them(tmp_path):
    for i in range(2):
        draw_shape("square", 16, random.Random(i)).save(tmp_path / f"square_{i}.png")
    with pytest.raises(ImageFolderError, match=r"holds 2 image file\(s\) but no class subfolders: move each"):
        ImageFolderDataset(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(ImageFolderError, match=r"is not a folder: check the path"):
        ImageFolderDataset(tmp_path / "nowhere")


def test_class_folder_without_images(tmp_path, shapes_root):
    shutil.copytree(shapes_root / "test", tmp_path / "data")
    (tmp_path / "data" / "hexagon").mkdir()
    (tmp_path / "data" / "hexagon" / "notes.txt").write_text("no images yet")
    with pytest.raises(ImageFolderError, match=r"hexagon holds no image files: add \.jpg, .* images to it or remove"):
        ImageFolderDataset(tmp_path / "data")


def test_unreadable_image_names_the_file_and_the_fix(tmp_path, shapes_root):
    shutil.copytree(shapes_root / "test", tmp_path / "data")
    broken = tmp_path / "data" / "circle" / "broken.png"
    broken.write_bytes(b"garbage, not a PNG")
    dataset = ImageFolderDataset(tmp_path / "data", transform=TRANSFORM)
    index = [path for path, _ in dataset.samples].index(broken)
    dataset[index + 1]  # the other files still load
    with pytest.raises(ImageFolderError, match=r"cannot read .*broken\.png as an image .* replace or delete it"):
        dataset[index]


def test_truncated_image_is_unreadable_too(tmp_path):
    path = tmp_path / "cut.png"
    draw_shape("circle", 64, random.Random(1)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageFolderError, match=r"cannot read .*cut\.png as an image"):
        load_image(path)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "LA"])
def test_load_image_gives_rgb_for_any_mode(tmp_path, mode):
    path = tmp_path / f"image_{mode}.png"
    draw_shape("triangle", 24, random.Random(2)).convert(mode).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (24, 24)


class FixedLogits(nn.Module):
    """Returns the same logits for every image and remembers the input shape and its mode."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)
        self.seen: tuple[int, ...] = ()
        self.was_training = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen, self.was_training = tuple(x.shape), self.training
        return self.logits.expand(len(x), -1)


@pytest.mark.parametrize("size, mode", [((200, 150), "RGBA"), ((31, 57), "L"), ((16, 16), "RGB")])
def test_predict_image_any_size_and_mode(tmp_path, size, mode):
    path = tmp_path / "custom.png"
    draw_shape("square", 40, random.Random(4)).resize(size).convert(mode).save(path)
    model = FixedLogits([0.0, 2.0, 1.0])
    name, probability = predict_image(model, path, TRANSFORM, ["circle", "square", "triangle"],
                                      torch.device("cpu"))
    assert model.seen == (1, 3, 16, 16)
    assert not model.was_training
    assert name == "square"
    assert probability == pytest.approx(torch.softmax(torch.tensor([0.0, 2.0, 1.0]), 0)[1].item())


def test_predict_image_with_a_trained_style_model_matches_manual_steps(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    path = tmp_path / "one.png"
    draw_shape("circle", 50, random.Random(5)).save(path)
    name, probability = predict_image(model, path, TRANSFORM, ["a", "b", "c"], torch.device("cpu"))
    with torch.no_grad():
        expected = torch.softmax(model(TRANSFORM(Image.open(path).convert("RGB")).unsqueeze(0)), dim=1)[0]
    assert name == "abc"[int(expected.argmax())]
    assert probability == pytest.approx(expected.max().item())


def test_predict_image_errors(tmp_path):
    path = tmp_path / "one.png"
    draw_shape("circle", 16, random.Random(6)).save(path)
    model = FixedLogits([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"3 class scores but class_names has 2 names"):
        predict_image(model, path, TRANSFORM, ["a", "b"], torch.device("cpu"))
    with pytest.raises(ValueError, match=r"transform must turn a PIL image into a \(C, H, W\) tensor"):
        predict_image(model, path, v2.Resize((16, 16)), ["a", "b", "c"], torch.device("cpu"))
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x00\x01 nothing")
    with pytest.raises(ImageFolderError, match=r"cannot read .*garbage\.png"):
        predict_image(model, garbage, TRANSFORM, ["a", "b", "c"], torch.device("cpu"))


# check_image_folder and split_image_folder: a folder of your own images (08's IMAGE_DIR)


def write_images(folder: Path, kind: str, count: int, seed: int = 0) -> list[Path]:
    """``count`` drawings of ``kind`` in ``folder``: PNG and JPEG in turn, of several sizes and colour modes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = random.Random(f"{seed}-{kind}"), []
    for i in range(count):
        image = draw_shape(kind, 12 + 9 * i, rng)
        if i % 2:
            path = folder / f"{kind}_{i}.jpg"
            (image.convert("L") if i % 4 == 1 else image).save(path, quality=85)
        else:
            path = folder / f"{kind}_{i}.png"
            image.convert(["RGB", "RGBA", "P"][i // 2 % 3]).resize((12 + 9 * i, 20 + 3 * i)).save(path)
        paths.append(path)
    return paths


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and modification time."""
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")}


def refused(root: Path) -> str:
    with pytest.raises(ImageFolderError) as info:
        check_image_folder(root)
    return str(info.value)


def test_good_folder_of_png_and_jpg_of_any_size_and_mode_is_accepted_and_not_touched(tmp_path):
    for kind in ("circle", "square"):
        write_images(tmp_path / "mine" / kind, kind, 6)
    (tmp_path / "mine" / "circle" / "notes.txt").write_text("skipped, like ImageFolder skips it")
    before = snapshot(tmp_path / "mine")
    opened = [Image.open(path) for path in (tmp_path / "mine").rglob("*.*g")]
    assert {image.mode for image in opened} == {"RGB", "RGBA", "L", "P"}  # the folder really is mixed
    assert len({image.size for image in opened}) == 6 and {image.format for image in opened} == {"PNG", "JPEG"}
    for image in opened:
        image.close()
    summary = check_image_folder(tmp_path / "mine")
    assert summary.classes == ["circle", "square"] == datasets.ImageFolder(tmp_path / "mine").classes
    assert summary.counts == {"circle": 6, "square": 6} and summary.n_images == 12
    assert not summary.split
    assert summary.ignored == [tmp_path / "mine" / "circle" / "notes.txt"]
    assert str(summary) == ("2 classes, 12 images (circle 6, square 6), one folder per class; "
                            "1 file(s) without an image ending skipped, such as notes.txt")
    assert snapshot(tmp_path / "mine") == before  # read only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    dataset = ImageFolderDataset(tmp_path / "mine", transform=TRANSFORM)  # and every image really loads
    assert all(dataset[i][0].shape == (3, 16, 16) for i in range(len(dataset)))


def test_folder_already_split_into_train_and_test_is_accepted(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for kind in ("circle", "square", "triangle"):
            write_images(tmp_path / split / kind, kind, count, seed=len(split))
    summary = check_image_folder(tmp_path)
    assert summary.split and summary.classes == ["circle", "square", "triangle"]
    assert summary.counts == {"circle": 6, "square": 6, "triangle": 6}
    assert "already split into train/ and test/" in str(summary)


def test_missing_empty_and_loose_folders_are_refused_with_the_fix(tmp_path):
    assert "is not a folder: check the path" in refused(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "is empty: put one subfolder per class in it" in refused(tmp_path / "empty")
    write_images(tmp_path / "loose", "circle", 2)
    assert "holds 2 image file(s) but no class subfolders: move each image" in refused(tmp_path / "loose")
    with pytest.raises(ImageFolderError, match=r"5 is not a folder path"):
        check_image_folder(5)


def test_only_one_class_is_refused(tmp_path):
    write_images(tmp_path / "circle", "circle", 4)
    message = refused(tmp_path)
    assert message == (f"{tmp_path} cannot be used for training (1 problem):\n- only one class folder, 'circle': a "
                       "classifier needs at least two classes, so add one folder of images for each other class")
    assert datasets.ImageFolder(tmp_path).classes == ["circle"]  # torchvision accepts it, as 08 says


@pytest.mark.parametrize("other_files", [[], ["notes.txt", "photo.heic"]])
def test_class_without_images_is_refused(tmp_path, other_files):
    write_images(tmp_path / "circle", "circle", 3)
    (tmp_path / "square").mkdir()
    for name in other_files:
        (tmp_path / "square" / name).write_text("not an image ending")
    message = refused(tmp_path)
    assert f"class folder {tmp_path / 'square'} holds no image files" in message
    assert "add .jpg, .jpeg, .png" in message and "images to it or remove the folder" in message
    assert ("(its 2 other file(s), such as notes.txt, are skipped)" in message) == bool(other_files)
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes square"):
        datasets.ImageFolder(tmp_path)  # torchvision refuses it too, as 08 says


def damaged_files(folder: Path) -> list[Path]:
    """Files with an image ending that PIL cannot decode: not an image, empty, a cut PNG, a cut JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.png").write_bytes(b"these bytes are not an image")
    (folder / "empty.jpg").write_bytes(b"")
    for ext in ("png", "jpg"):
        draw_shape("circle", 64, random.Random(ext)).save(folder / f"whole.{ext}")
        (folder / f"cut.{ext}").write_bytes((folder / f"whole.{ext}").read_bytes()[:600])
        (folder / f"whole.{ext}").unlink()
    return sorted(folder.iterdir())


def test_every_file_that_cannot_be_decoded_is_named(tmp_path):
    for kind in ("circle", "square"):
        write_images(tmp_path / kind, kind, 3)
    bad = damaged_files(tmp_path / "square" / "from_phone")
    message = refused(tmp_path)
    assert message.startswith(f"{tmp_path} cannot be used for training (4 problems):\n- cannot read ")
    for path in bad:
        assert f"cannot read {path} as an image (" in message
        with pytest.raises(ImageFolderError, match="cannot read"):  # the files the loader would stop at
            load_image(path)
    assert "the file is damaged or not an image; replace or delete it" in message
    assert "not a format PIL recognises" in message  # text.png
    assert "truncated" in message  # the cut JPEG, which Image.verify() would let through


def test_a_cut_jpeg_passes_pil_verify_but_not_the_check(tmp_path):
    whole = tmp_path / "whole.jpg"
    draw_shape("square", 400, random.Random(0)).save(whole)
    cut = tmp_path / "mine" / "square" / "cut.jpg"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with Image.open(cut) as image:
        image.verify()  # no error: for a JPEG, verify does not decode the image data
    write_images(tmp_path / "mine" / "circle", "circle", 2)
    write_images(tmp_path / "mine" / "square", "square", 2)
    assert f"cannot read {cut} as an image (image file is truncated" in refused(tmp_path / "mine")


def test_many_damaged_files_are_counted_after_the_first_few(tmp_path):
    write_images(tmp_path / "circle", "circle", 2)
    (tmp_path / "square").mkdir()
    for i in range(8):
        (tmp_path / "square" / f"{i}.png").write_bytes(b"no")
    message = refused(tmp_path)
    assert message.count("- cannot read") == 5
    assert message.endswith("- ... and 3 more files that cannot be read as images")
    assert refused(tmp_path).count("cannot read") == 5
    with pytest.raises(ImageFolderError) as info:
        check_image_folder(tmp_path, max_listed=8)
    assert str(info.value).count("- cannot read") == 8


def test_torchvision_finds_a_damaged_file_only_when_loading_it(tmp_path):
    write_images(tmp_path / "circle", "circle", 2)
    write_images(tmp_path / "square", "square", 2)
    (tmp_path / "square" / "photo.png").write_bytes(b"not an image")
    dataset = datasets.ImageFolder(tmp_path)  # no error yet, as 08 says
    index = [path for path, _ in dataset.samples].index(str(tmp_path / "square" / "photo.png"))
    with pytest.raises(OSError, match="cannot identify image file"):
        dataset[index]


def test_one_image_in_a_class_is_too_few_to_split(tmp_path):
    write_images(tmp_path / "circle", "circle", 3)
    write_images(tmp_path / "square", "square", 1)
    assert (f"- class folder {tmp_path / 'square'} holds only 1 image: at least 2 are needed, one to train on "
            "and one to test") in refused(tmp_path)


def test_split_layout_needs_the_same_classes_in_train_and_test(tmp_path):
    for split, kinds in (("train", ("circle", "square", "triangle")), ("test", ("circle", "square"))):
        for kind in kinds:
            write_images(tmp_path / split / kind, kind, 1)
    assert "train/ and test/ must hold the same class folders (only in train/: triangle)" in refused(tmp_path)
    write_images(tmp_path / "test" / "hexagon", "circle", 1)
    assert "(only in train/: triangle; only in test/: hexagon)" in refused(tmp_path)


def test_several_problems_are_all_listed_one_line_each(tmp_path):
    write_images(tmp_path / "circle", "circle", 2)
    (tmp_path / "circle" / "bad.jpg").write_bytes(b"no")
    (tmp_path / "square").mkdir()
    write_images(tmp_path / "triangle", "triangle", 1)
    message = refused(tmp_path)
    assert message.startswith(f"{tmp_path} cannot be used for training (3 problems):\n- ")
    lines = message.splitlines()[1:]
    assert len(lines) == 3 and all(line.startswith("- ") for line in lines)
    assert "square holds no image files" in lines[0] and "triangle holds only 1 image" in lines[1]
    assert f"cannot read {tmp_path / 'circle' / 'bad.jpg'}" in lines[2]


def make_own_folder(root: Path, counts: dict[str, int]) -> Path:
    for kind, count in counts.items():
        write_images(root / kind, kind, count)
    return root


def test_split_copies_a_seeded_quarter_of_each_class_to_test(tmp_path):
    mine = make_own_folder(tmp_path / "mine", {"circle": 8, "square": 5, "triangle": 2})
    (mine / "circle" / "notes.txt").write_text("not copied")
    before = snapshot(mine)
    dest = split_image_folder(mine, tmp_path / "data" / "mine_split", seed=7)
    assert dest == tmp_path / "data" / "mine_split"
    assert snapshot(mine) == before
    kinds = ("circle", "square", "triangle")
    test = {kind: sorted(p.name for p in (dest / "test" / kind).iterdir()) for kind in kinds}
    train = {kind: sorted(p.name for p in (dest / "train" / kind).iterdir()) for kind in kinds}
    assert {kind: len(names) for kind, names in test.items()} == {"circle": 2, "square": 1, "triangle": 1}
    for kind in test:  # every image once, in one split; the bytes unchanged
        assert sorted(test[kind] + train[kind]) == sorted(p.name for p in (mine / kind).glob("*.*g"))
        for name in test[kind]:
            assert (dest / "test" / kind / name).read_bytes() == (mine / kind / name).read_bytes()
    summary = check_image_folder(dest)
    assert summary.split and summary.n_images == 15
    assert datasets.ImageFolder(dest / "test").classes == ["circle", "square", "triangle"]
    again = split_image_folder(mine, tmp_path / "again", seed=7)
    assert {kind: sorted(p.name for p in (again / "test" / kind).iterdir()) for kind in test} == test
    others = [split_image_folder(mine, tmp_path / f"seed{seed}", seed=seed) for seed in range(4)]
    assert len({tuple(sorted(p.name for p in (o / "test" / "circle").iterdir())) for o in others}) > 1


def test_split_is_kept_while_the_files_stay_and_redone_when_they_change(tmp_path):
    mine = make_own_folder(tmp_path / "mine", {"circle": 4, "square": 4})
    dest = split_image_folder(mine, tmp_path / "split", seed=1)
    made = snapshot(dest)
    assert split_image_folder(mine, dest, seed=1) == dest and snapshot(dest) == made  # nothing redone
    write_images(mine / "circle" / "more", "circle", 4, seed=5)
    split_image_folder(mine, dest, seed=1)
    assert check_image_folder(dest).counts == {"circle": 8, "square": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "split"]  # no staging folder left


def test_a_split_of_another_seed_never_deletes_a_file_you_added_to_the_split(tmp_path):
    mine = make_own_folder(tmp_path / "mine", {"circle": 4, "square": 4})
    dest = split_image_folder(mine, tmp_path / "split", seed=1)
    made = snapshot(dest)
    (dest / "train" / "circle" / "my_own.png").write_bytes(b"a learner's image")
    with pytest.raises(FileExistsError, match=r"holds train/circle/my_own\.png that split_image_folder did not"):
        split_image_folder(mine, dest, seed=2)
    assert (dest / "train" / "circle" / "my_own.png").read_bytes() == b"a learner's image"
    files = {name for name in made if (dest / name).is_file()}
    assert {name: value for name, value in snapshot(dest).items() if name in files} == {n: made[n] for n in files}


def test_split_refuses_a_folder_it_did_not_make_and_a_class_of_one(tmp_path):
    mine = make_own_folder(tmp_path / "mine", {"circle": 3, "square": 3})
    (tmp_path / "yours").mkdir()
    (tmp_path / "yours" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="was not made by split_image_folder"):
        split_image_folder(mine, tmp_path / "yours")
    assert (tmp_path / "yours" / "keep.txt").read_text() == "mine"
    write_images(tmp_path / "mine" / "triangle", "triangle", 1)
    with pytest.raises(ValueError, match="class 'triangle' has 1 image"):
        split_image_folder(mine, tmp_path / "split")
    assert not (tmp_path / "split").exists()
    with pytest.raises(ValueError, match="test_fraction"):
        split_image_folder(mine, tmp_path / "split", test_fraction=1.0)


def test_split_leaves_every_class_something_to_train_on_and_to_test(tmp_path):
    mine = make_own_folder(tmp_path / "mine", {"circle": 2, "square": 3})
    for fraction, expected in ((0.01, {"circle": 1, "square": 1}), (0.99, {"circle": 1, "square": 2})):
        dest = split_image_folder(mine, tmp_path / f"split_{fraction}", test_fraction=fraction)
        assert {kind: len(list((dest / "test" / kind).iterdir())) for kind in expected} == expected
        assert all(len(list((dest / "train" / kind).iterdir())) >= 1 for kind in expected)


def test_the_dataset_and_the_check_give_the_same_messages(tmp_path):
    """08: ImageFolderDataset stops at the same folders with the same messages, the damaged file when loaded."""
    write_images(tmp_path / "loose", "circle", 2)
    with pytest.raises(ImageFolderError) as info:
        ImageFolderDataset(tmp_path / "loose")
    assert str(info.value) == refused(tmp_path / "loose")
    write_images(tmp_path / "empty_class" / "circle", "circle", 2)
    (tmp_path / "empty_class" / "square").mkdir()
    with pytest.raises(ImageFolderError) as info:
        ImageFolderDataset(tmp_path / "empty_class")
    assert refused(tmp_path / "empty_class").endswith(f"\n- {info.value}")
    write_images(tmp_path / "broken" / "circle", "circle", 2)
    write_images(tmp_path / "broken" / "square", "square", 2)
    (tmp_path / "broken" / "square" / "photo.png").write_bytes(b"no")
    dataset = ImageFolderDataset(tmp_path / "broken")
    with pytest.raises(ImageFolderError) as info:
        dataset[[path.name for path, _ in dataset.samples].index("photo.png")]
    assert refused(tmp_path / "broken").endswith(f"\n- {info.value}")
