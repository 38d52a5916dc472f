"""Data as tensors in memory: generated sets, the digits images and subsets of them, splits and loaders (01_data).

Image data sets read from files (image folders, the generated shapes, torchvision's
sets) live in :mod:`helpers.vision`; anything that needs the network in
:mod:`helpers.downloads`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from helpers.device import make_generator

__all__ = [
    "DATASETS",
    "DIGIT_CLASSES",
    "TOY_DATASETS",
    "InMemoryLoader",
    "TensorPairDataset",
    "few_labelled_split",
    "load_data",
    "load_digits",
    "make_line",
    "make_loaders",
    "make_toy_2d",
    "select_digits",
    "split_tensors",
]

TOY_DATASETS = ("circles", "moons", "blobs")
DIGIT_CLASSES = [str(d) for d in range(10)]
DATASETS = ("digits",)  # the sets load_data knows: what the command-line scripts train on


def make_line(
    n_samples: int = 100, weight: float = 0.7, bias: float = 0.3, noise: float = 0.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on ``y = weight * x + bias`` for x evenly spaced in [0, 1); shapes (N, 1).

    ``noise`` adds Gaussian noise with that standard deviation to ``y``.
    """
    X = torch.arange(n_samples, dtype=torch.float32).unsqueeze(1) / n_samples  # (N, 1)
    y = weight * X + bias
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=make_generator(seed))
    return X, y


def make_toy_2d(
    name: str, n_samples: int = 1000, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-D classification set from scikit-learn: ``circles``, ``moons`` or ``blobs``.

    Returns features (N, 2) float32 and integer labels (N,).
    """
    from sklearn import datasets  # imported here: scikit-learn is slow to import

    if name == "circles":
        X, y = datasets.make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    elif name == "moons":
        X, y = datasets.make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "blobs":
        X, y = datasets.make_blobs(
            n_samples, centers=4, cluster_std=1.0 + 10 * noise, random_state=seed
        )
    else:
        raise ValueError(f"unknown 2-D data set {name!r}: choose one of {', '.join(TOY_DATASETS)}")
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 real 8x8 handwritten digits shipped with scikit-learn (no download).

    Returns images (N, 1, 8, 8) float32 scaled to [0, 1] and labels (N,) int64.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return images, torch.as_tensor(bunch.target, dtype=torch.long)


def split_tensors(
    X: torch.Tensor, y: torch.Tensor, test_fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle with a seeded generator and split into ``X_train, X_test, y_train, y_test``."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}: they must match")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = torch.randperm(len(X), generator=make_generator(seed))
    n_test = max(1, round(len(X) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def load_data(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X_train, X_test, y_train, y_test`` of the data set ``name``: the digits split 80/20 with ``seed``.

    The one digits split of the helpers: the command-line scripts (10_going_further), the image sets
    of :mod:`helpers.vision` and the benchmark all take it from here, so the same seed gives the same
    images everywhere, and the same as 03_train's ``split_tensors(images, labels, 0.2, seed=SEED)``.
    """
    if name != "digits":
        raise ValueError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    images, labels = load_digits()  # (N, 1, 8, 8), (N,)
    return split_tensors(images, labels, test_fraction=0.2, seed=seed)


def select_digits(X: torch.Tensor, y: torch.Tensor, digits: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``digits`` only, relabelled 0, 1, ... in the order given (09_transfer_learning).

    >>> X, y = select_digits(torch.zeros(4, 1), torch.tensor([5, 0, 9, 5]), digits=[5, 9])
    >>> y
    tensor([0, 1, 0])
    """
    digits = list(digits)
    repeated = sorted({digit for digit in digits if digits.count(digit) > 1})
    if repeated:
        raise ValueError(f"digits {digits} name {', '.join(map(str, repeated))} more than once: list each digit "
                         "once, since its place in the list is its new label")
    keep = torch.isin(y, torch.tensor(digits))
    new_label = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    new_label[digits] = torch.arange(len(digits))
    return X[keep], new_label[y[keep]]


def few_labelled_split(
    X: torch.Tensor, y: torch.Tensor, per_class: int, seed: int = 0, test_fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X_labelled, y_labelled, X_test, y_test``: ``per_class`` labelled examples of each class (09).

    Each class is shuffled with a seeded generator; its first ``test_fraction``
    become test images, the next ``per_class`` the labelled training examples.
    The test set does not depend on ``per_class``, so runs with more or fewer
    labels are compared on the same images.
    """
    generator = make_generator(seed)
    labelled, test = [], []
    for label in range(int(y.max()) + 1):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(len(members) * test_fraction)
        if per_class < 1 or n_test + per_class > len(members):
            raise ValueError(
                f"cannot take {per_class} labelled examples of class {label}: it has "
                f"{len(members) - n_test} images besides its test images (ask for 1 to {len(members) - n_test})"
            )
        test.append(members[:n_test])
        labelled.append(members[n_test:n_test + per_class])
    labelled_idx, test_idx = torch.cat(labelled), torch.cat(test)
    return X[labelled_idx], y[labelled_idx], X[test_idx], y[test_idx]


class TensorPairDataset(Dataset):
    """A hand-written ``Dataset`` over feature and label tensors (written out in 01_data).

    Does what ``torch.utils.data.TensorDataset`` does, plus an optional
    ``transform`` applied to each feature tensor when it is read.
    """

    def __init__(
        self, X: torch.Tensor, y: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}: they must match")
        self.X, self.y, self.transform = X, y, transform

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.X[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[index]


def make_loaders(
    train_data: Dataset, test_data: Dataset, batch_size: int, seed: int = 0, num_workers: int = 0
) -> tuple[DataLoader, DataLoader]:
    """A shuffling training loader (seeded) and an ordered test loader.

    ``num_workers=0`` loads in the main process, the fastest choice for small
    in-memory data; raise it only when loading each sample is slow.
    """
    train_loader = DataLoader(
        train_data, batch_size=batch_size, shuffle=True, generator=make_generator(seed),
        num_workers=num_workers,
    )
    test_loader = DataLoader(test_data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    return train_loader, test_loader


class InMemoryLoader:
    """Batches sliced from tensors that already live on the device (the fast path, 10_going_further).

    For small data sets it replaces ``DataLoader``: no per-sample indexing, no
    collation, no host-to-device copy per batch. Shuffling uses its own seeded
    generator, so the batch order is reproducible.
    """

    def __init__(
        self, X: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False,
        seed: int = 0, device: torch.device | str = "cpu",
    ) -> None:
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}: they must match")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.X, self.y = X.to(device), y.to(device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = make_generator(seed)

    def __len__(self) -> int:
        return -(-len(self.X) // self.batch_size)  # ceiling division: the last batch may be short

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.X)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.X.device)
            X, y = self.X.index_select(0, order), self.y.index_select(0, order)  # X[order], a few times faster
        else:
            X, y = self.X, self.y
        if n > 0:  # split() would turn no rows into one empty batch
            yield from zip(X.split(self.batch_size), y.split(self.batch_size), strict=True)  # views, no copies
