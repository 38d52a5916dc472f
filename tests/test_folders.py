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
from helpers.vision import IMG_EXTENSIONS, ImageFolderDataset, ImageFolderError, find_classes, find_samples, load_image

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
    with pytest.raises(ImageFolderError, match=r"hexagon holds no image files .*add images to it or remove"):
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
