import hashlib

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import (
    InMemoryLoader,
    TensorPairDataset,
    load_data,
    load_digits,
    make_line,
    make_loaders,
    make_toy_2d,
    select_digits,
    split_tensors,
)


def test_make_line_follows_the_formula():
    X, y = make_line(50, weight=0.7, bias=0.3)
    assert X.shape == y.shape == (50, 1)
    assert torch.allclose(y, 0.7 * X + 0.3)
    assert X.min() == 0 and X.max() < 1


def test_make_line_noise_is_seeded():
    assert torch.equal(make_line(20, noise=0.1, seed=1)[1], make_line(20, noise=0.1, seed=1)[1])
    assert not torch.equal(make_line(20, noise=0.1, seed=1)[1], make_line(20, noise=0.1, seed=2)[1])


@pytest.mark.parametrize(("name", "classes"), [("circles", 2), ("moons", 2), ("blobs", 4)])
def test_toy_sets(name, classes):
    X, y = make_toy_2d(name, n_samples=200, seed=0)
    assert X.shape == (200, 2) and X.dtype == torch.float32
    assert y.dtype == torch.long and set(y.tolist()) == set(range(classes))


def test_unknown_toy_set():
    with pytest.raises(ValueError, match="unknown 2-D data set 'spirals'"):
        make_toy_2d("spirals")


def test_digits_are_real_scaled_images():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == 0 and images.max() == 1
    assert torch.bincount(labels).tolist()[:3] == [178, 182, 177]


def test_split_is_seeded_disjoint_and_complete():
    X = torch.arange(100).unsqueeze(1)
    y = torch.arange(100)
    X_train, X_test, y_train, y_test = split_tensors(X, y, test_fraction=0.25, seed=3)
    assert len(X_test) == 25 and len(X_train) == 75
    assert torch.equal(X_train.squeeze(1), y_train)  # rows stay paired with their labels
    assert sorted(torch.cat([y_train, y_test]).tolist()) == list(range(100))
    assert torch.equal(split_tensors(X, y, 0.25, seed=3)[3], y_test)
    assert not torch.equal(split_tensors(X, y, 0.25, seed=4)[3], y_test)


# The first test and training labels and a digest of each split, as the split was made before it had one
# home (load_data, vision and the benchmark each called split_tensors): a changed split changes them.
DIGITS_SPLITS = {
    0: ([6, 5, 5, 7, 9, 9, 8, 4, 6, 8, 6, 0], [7, 7, 1, 9, 8, 5, 0, 4, 5, 6, 5, 8],
        "2bcbe2b4ac134a6b", "80916c7b7a28a644"),
    42: ([3, 9, 6, 9, 2, 1, 1, 3, 2, 1, 7, 3], [4, 9, 2, 2, 5, 4, 4, 9, 8, 5, 1, 4],
         "fb2e31d8c66ebd3a", "2bd00d759494c161"),
}


def digest(X: torch.Tensor, y: torch.Tensor) -> str:
    return hashlib.sha256(X.numpy().tobytes() + y.numpy().tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("seed", sorted(DIGITS_SPLITS))
def test_the_digits_split_is_the_same_as_before_for_the_same_seed(seed):
    X_train, X_test, y_train, y_test = load_data("digits", seed)
    test_labels, train_labels, test_digest, train_digest = DIGITS_SPLITS[seed]
    assert (len(X_train), len(X_test)) == (1438, 359)  # 80/20 of 1,797, rounded
    assert y_test[:12].tolist() == test_labels and y_train[:12].tolist() == train_labels
    assert digest(X_test, y_test) == test_digest and digest(X_train, y_train) == train_digest
    same = split_tensors(*load_digits(), test_fraction=0.2, seed=seed)  # what 03_train writes out by hand
    assert all(torch.equal(a, b) for a, b in zip((X_train, X_test, y_train, y_test), same, strict=True))


def test_the_image_sets_take_the_digits_split_from_load_data(monkeypatch, tmp_path):
    import helpers.vision

    calls = []

    def spy(name, seed):
        calls.append((name, seed))
        return load_data(name, seed)

    monkeypatch.setattr(helpers.vision, "load_data", spy)
    data = helpers.vision.load_image_dataset("digits", tmp_path, seed=42)
    assert calls == [("digits", 42)]
    assert torch.equal(data.y_test, load_data("digits", 42)[3])


def test_load_data_refuses_an_unknown_set():
    with pytest.raises(ValueError, match=r"^unknown data set 'mnist': choose one of digits$"):
        load_data("mnist", 0)


def test_split_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="X has 3 rows but y has 2"):
        split_tensors(torch.zeros(3, 1), torch.zeros(2))


def test_hand_written_dataset_matches_tensor_dataset():
    X, y = torch.randn(10, 3), torch.arange(10)
    ours, theirs = TensorPairDataset(X, y), TensorDataset(X, y)
    assert len(ours) == len(theirs)
    for i in range(len(ours)):
        assert all(torch.equal(a, b) for a, b in zip(ours[i], theirs[i], strict=True))
    batches = zip(DataLoader(ours, batch_size=4), DataLoader(theirs, batch_size=4), strict=True)
    for (xa, ya), (xb, yb) in batches:
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_dataset_transform_is_applied_per_item():
    dataset = TensorPairDataset(torch.ones(2, 3), torch.zeros(2), transform=lambda x: x * 5)
    assert torch.equal(dataset[1][0], torch.full((3,), 5.0))


def test_loaders_shuffle_reproducibly_and_keep_test_order():
    data = TensorPairDataset(torch.arange(20).float().unsqueeze(1), torch.arange(20))
    first = torch.cat([y for _, y in make_loaders(data, data, 8, seed=1)[0]])
    again = torch.cat([y for _, y in make_loaders(data, data, 8, seed=1)[0]])
    assert torch.equal(first, again) and not torch.equal(first, torch.arange(20))
    assert torch.equal(torch.cat([y for _, y in make_loaders(data, data, 8)[1]]), torch.arange(20))


def test_in_memory_loader_covers_every_example_once_with_short_last_batch():
    X, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    loader = InMemoryLoader(X, y, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and not torch.equal(seen, y)
    assert all(torch.equal(xb.squeeze(1).long(), yb) for xb, yb in batches)
    second_epoch = torch.cat([b[1] for b in loader])
    assert not torch.equal(second_epoch, seen)  # a new order each epoch
    replay = InMemoryLoader(X, y, batch_size=4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b[1] for b in replay]), seen)  # the same seed, the same order


def test_in_memory_loader_refuses_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        InMemoryLoader(torch.zeros(2, 1), torch.zeros(2), batch_size=0)


def test_select_digits_refuses_a_digit_listed_twice():
    X, y = torch.zeros(4, 1), torch.tensor([5, 0, 9, 5])
    with pytest.raises(ValueError, match=r"^digits \[5, 5, 9\] name 5 more than once: list each digit once"):
        select_digits(X, y, [5, 5, 9])
    X_kept, y_kept = select_digits(X, y, (9, 5))
    assert y_kept.tolist() == [1, 0, 1] and len(X_kept) == 3
