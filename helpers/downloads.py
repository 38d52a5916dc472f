"""Everything that may use the network: torchvision's data sets and pretrained weights (07, 09).

The default path of every notebook is offline; these functions run only when a learner
picks an online data set (07) or ImageNet weights (09). Each one first looks for the files
on disk and goes to the network only when they are missing, after a quick check that the
server answers, so an offline machine fails within seconds with one clear message instead
of hanging. The downloads themselves are torchvision's own (``download=True``,
``weights.get_state_dict``). Nothing here changes process-wide settings such as the socket
timeout.

Setting the environment variable ``COURSE_OFFLINE=1`` (or true, yes, on) forbids the network
altogether (the test suite does): every online choice then fails at once, as on a machine
without one.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.utils import check_integrity

from helpers.paths import display_path

__all__ = [
    "OFFLINE_ENV", "ONLINE_DATASETS", "DatasetUnavailableError", "WeightsUnavailableError",
    "cached_weights_path", "check_reachable", "fetch_weights", "network_allowed", "open_torchvision_dataset",
    "torchvision_folder",
]

OFFLINE_ENV = "COURSE_OFFLINE"
PROBE_TIMEOUT_S = 5.0  # a server that does not answer within 5 s counts as unreachable
ONLINE_DATASETS: dict[str, type[datasets.VisionDataset]] = {
    "fashion_mnist": datasets.FashionMNIST, "mnist": datasets.MNIST, "cifar10": datasets.CIFAR10,
}


class DatasetUnavailableError(RuntimeError):
    """An online data set is neither in the data folder nor downloadable; the message says what to do."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the ``torch.hub`` cache nor downloadable; the message says why."""


_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def network_allowed() -> bool:
    """False when ``COURSE_OFFLINE`` is 1, true, yes or on; True when unset, empty, 0, false, no or off.

    Case and surrounding spaces do not matter; any other value raises ``ValueError``.
    """
    value = os.environ.get(OFFLINE_ENV, "")
    if value.strip().lower() not in _YES + _NO:
        raise ValueError(f"{OFFLINE_ENV}={value!r} is neither yes nor no: set it to 1 (or true, yes, on) to "
                         "forbid the network, or to 0 (or false, no, off), or unset it, to allow it")
    return value.strip().lower() in _NO


def check_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise ``OSError`` saying why, unless the network is allowed and ``url``'s server answers in ``timeout`` s.

    The probe opens one TCP connection in a background thread, so even a name lookup that
    hangs (a machine whose network drops packets) cannot keep the caller waiting longer.
    """
    host = urlparse(url).hostname or url
    if not network_allowed():
        raise OSError(f"the network is switched off ({OFFLINE_ENV}={os.environ[OFFLINE_ENV]})")
    port = urlparse(url).port or (443 if urlparse(url).scheme == "https" else 80)
    outcome: dict[str, Any] = {}

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = True
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if "ok" not in outcome:
        raise OSError(f"no connection to {host}: {outcome.get('error') or f'no answer within {timeout:g} s'}")


def torchvision_folder(name: str, root: Path) -> Path:
    """The folder in which torchvision's class for ``name`` looks for its files under ``root``."""
    cls = ONLINE_DATASETS[name]
    if issubclass(cls, datasets.MNIST):
        return Path(root) / cls.__name__ / "raw"
    return Path(root) / cls.base_folder


def _first_url(cls: type[datasets.VisionDataset]) -> str:
    if issubclass(cls, datasets.MNIST):
        return cls.mirrors[0]
    return cls.url


def _archives_present(cls: type[datasets.VisionDataset], root: Path) -> bool:
    """Whether every file torchvision would download for ``cls`` is already under ``root``, intact."""
    if issubclass(cls, datasets.MNIST):
        raw = root / cls.__name__ / "raw"
        return all(check_integrity(str(raw / filename), md5) for filename, md5 in cls.resources)
    return check_integrity(str(root / cls.filename), cls.tgz_md5)


def _unpacked_present(cls: type[datasets.VisionDataset], root: Path) -> bool:
    """Whether the files torchvision's ``cls`` reads are under ``root`` (the checks its constructor makes)."""
    if issubclass(cls, datasets.MNIST):
        raw = root / cls.__name__ / "raw"
        return all((raw / Path(filename).stem).is_file() for filename, _ in cls.resources)
    folder = root / cls.base_folder
    return all(check_integrity(str(folder / filename), md5) for filename, md5 in (*cls.train_list, *cls.test_list))


def _hand_copy_hint(name: str, root: Path) -> str:
    cls = ONLINE_DATASETS[name]
    if issubclass(cls, datasets.MNIST):
        files = ", ".join(filename for filename, _ in cls.resources)
        return f"put its files ({files}) in {torchvision_folder(name, root)}"
    return (f"put {cls.filename} in {root} (or the files it unpacks to in "
            f"{torchvision_folder(name, root)})")


def open_torchvision_dataset(
    name: str, root: Path, train: bool, transform: Callable | None = None,
    offline_choices: tuple[str, ...] = ("digits", "shapes"),
) -> Dataset:
    """torchvision's own dataset ``name`` under ``root``: read from disk, else downloaded.

    Raises :class:`DatasetUnavailableError` when the files are missing and cannot be
    downloaded, naming ``offline_choices`` and the folder where the files can be put by hand.
    """
    if name not in ONLINE_DATASETS:
        raise ValueError(f"unknown torchvision data set {name!r}: choose one of {', '.join(ONLINE_DATASETS)}")
    cls = ONLINE_DATASETS[name]
    if _unpacked_present(cls, Path(root)):  # on disk: any error opening it is a real one, and shown as it is
        return cls(str(root), train=train, transform=transform, download=False)
    try:
        if not _archives_present(cls, Path(root)):  # files put there by hand: torchvision unpacks them offline
            check_reachable(_first_url(cls))
        return cls(str(root), train=train, transform=transform, download=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        if _unpacked_present(cls, Path(root)):
            raise  # the files arrived, so the failure is not about downloading them
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        offline = " or ".join(repr(n) for n in offline_choices)
        raise DatasetUnavailableError(
            f"DATASET = {name!r} is not in {torchvision_folder(name, root)} and could not be downloaded "
            f"({reason}). Without a network choose an offline data set, DATASET = {offline}; or download "
            f"it on another machine and {_hand_copy_hint(name, root)}."
        ) from None


def cached_weights_path(weights: Any) -> Path:
    """Where ``torch.hub`` keeps the file of torchvision ``weights``: ``torch.hub.get_dir()/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def fetch_weights(weights: Any) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``weights``, from the ``torch.hub`` cache or downloaded into it.

    Uses torchvision's own ``weights.get_state_dict`` with the file's hash checked on download
    and ``weights_only=True`` on loading, so a file in the cache that would run code is refused.
    After this call, the model's constructor (``mobilenet_v3_small(weights=weights)``) reads the
    same, checked file. Raises :class:`WeightsUnavailableError` saying why when neither works.
    """
    path = cached_weights_path(weights)
    if not path.is_file():
        try:
            check_reachable(weights.url)
        except OSError as error:
            raise WeightsUnavailableError(
                f"{weights} is not in the torch.hub cache ({display_path(path.parent)}) and cannot be downloaded "
                f"({error}); "
                f"to use it offline, put {path.name} from {weights.url} in that folder"
            ) from None
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError) as error:  # the download broke off, or the disk is full
        raise WeightsUnavailableError(f"{weights} could not be downloaded: {error}") from None
    except Exception as error:  # a damaged or unsafe file fails in many ways (pickle, zip, hash)
        raise WeightsUnavailableError(
            f"{weights} in the cache cannot be used ({type(error).__name__}: {error}); delete "
            f"{display_path(path)} and run again"
        ) from None
