import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers.data import (
    InMemoryLoader,
    TensorPairDataset,
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
