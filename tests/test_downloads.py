"""helpers.downloads: the only network code. Every test stays offline: the network functions are monkeypatched.

``check_reachable`` is tested with ``socket.create_connection`` replaced (refusing, hanging,
answering); torchvision's downloads with ``urllib.request.urlopen`` and
``torch.hub.download_url_to_file`` replaced. Weights come from a ``torch.hub`` cache in a
temporary ``TORCH_HOME`` holding files written here with the real
``MobileNet_V3_Small_Weights`` enum's names.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from torchvision import datasets
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small

from helpers.downloads import (
    OFFLINE_ENV,
    ONLINE_DATASETS,
    DatasetUnavailableError,
    WeightsUnavailableError,
    cached_weights_path,
    check_reachable,
    fetch_weights,
    network_allowed,
    open_torchvision_dataset,
    torchvision_folder,
)

WEIGHTS = MobileNet_V3_Small_Weights.DEFAULT
WEIGHTS_FILE = "mobilenet_v3_small-047dcff4.pth"  # the name in WEIGHTS.url, which torch.hub keeps


class RunsCode:
    """Pickles to a call of ``exec`` that writes ``marker``: loading it with plain pickle runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('the payload ran')",)


def mobilenet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of the right architecture with seeded random values (the real file is not needed)."""
    torch.manual_seed(seed)
    return mobilenet_v3_small(weights=None).state_dict()


def write_unsafe_weights(path: Path, marker: Path) -> None:
    """A weights file that would run code (write ``marker``) when loaded without ``weights_only``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.0.weight": torch.zeros(1), "payload": RunsCode(marker)}, path)


@pytest.fixture
def hub_cache(monkeypatch, tmp_path) -> Path:
    """An empty ``torch.hub`` cache: ``TORCH_HOME`` in tmp_path; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


class Connections:
    """Stands in for ``socket.create_connection``: logs each call, then answers as ``behaviour`` says."""

    def __init__(self, behaviour: str = "refuse", hang_s: float = 3.0) -> None:
        self.behaviour, self.hang_s = behaviour, hang_s
        self.calls: list[tuple[tuple[str, int], float | None, float | None]] = []

    def __call__(self, address, timeout=None, *args, **kwargs):
        self.calls.append((address, timeout, socket.getdefaulttimeout()))
        if self.behaviour == "refuse":
            raise ConnectionRefusedError(111, "Connection refused (blocked in tests)")
        if self.behaviour == "hang":
            time.sleep(self.hang_s)  # a lookup or connection that never answers
            raise TimeoutError("timed out")
        return _Closable()


class _Closable:
    def close(self) -> None:
        pass


@pytest.fixture
def network(monkeypatch) -> Connections:
    """The network is allowed (``COURSE_OFFLINE`` unset) but every connection is refused and logged."""
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    connections = Connections("refuse")
    monkeypatch.setattr(socket, "create_connection", connections)
    return connections


@pytest.fixture
def no_downloads(monkeypatch) -> list[str]:
    """torchvision's and torch.hub's downloads fail as offline; returns the URLs they tried."""
    tried: list[str] = []

    def urlopen(request, *args, **kwargs):
        tried.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("download blocked in tests")

    def download_url_to_file(url, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("download blocked in tests")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    return tried


# --- the COURSE_OFFLINE switch and check_reachable


@pytest.mark.parametrize(("value", "allowed"), [
    (None, True), ("", True), ("0", True), ("false", True), ("No", True), ("OFF", True), (" 0 ", True),
    ("1", False), ("true", False), ("Yes", False), ("ON", False), ("True\n", False),
])
def test_course_offline_takes_the_usual_yes_and_no_spellings(monkeypatch, value, allowed):
    assert OFFLINE_ENV == "COURSE_OFFLINE"
    if value is None:
        monkeypatch.delenv(OFFLINE_ENV, raising=False)
    else:
        monkeypatch.setenv(OFFLINE_ENV, value)
    assert network_allowed() is allowed


@pytest.mark.parametrize("value", ["2", "offline", "y", "nope"])
def test_course_offline_of_another_value_is_refused_saying_what_it_takes(monkeypatch, value):
    monkeypatch.setenv(OFFLINE_ENV, value)
    with pytest.raises(ValueError, match=rf"^COURSE_OFFLINE='{value}' is neither yes nor no: set it to 1 \(or true, "
                                         r"yes, on\) to forbid the network, or to 0 \(or false, no, off\), or unset"):
        network_allowed()


def test_check_reachable_with_course_offline_refuses_at_once_naming_the_variable(monkeypatch):
    connections = Connections("answer")
    monkeypatch.setattr(socket, "create_connection", connections)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(OSError, match=r"^the network is switched off \(COURSE_OFFLINE=1\)$"):
        check_reachable("https://download.pytorch.org/models/x.pth", timeout=5)
    assert connections.calls == []  # not even tried: it fails at once, whatever the machine's load


def test_check_reachable_refused_connection_raises_oserror_naming_host_and_reason(network):
    with pytest.raises(OSError, match=r"^no connection to download\.pytorch\.org: .*Connection refused"):
        check_reachable("https://download.pytorch.org/models/x.pth", timeout=2)
    assert [address for address, _, _ in network.calls] == [("download.pytorch.org", 443)]


def test_check_reachable_gives_up_on_a_silent_host_after_the_timeout(network):
    network.behaviour = "hang"
    started = time.perf_counter()
    with pytest.raises(OSError, match=r"^no connection to example\.invalid: no answer within 0\.3 s$"):
        check_reachable("http://example.invalid/file", timeout=0.3)
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 0.3 + 0.5 + 0.3  # joins the probe for timeout + 0.5 s, not the 3 s it hangs


@pytest.mark.parametrize(("url", "address"), [
    ("https://download.pytorch.org/models/x.pth", ("download.pytorch.org", 443)),
    ("http://yann.lecun.com/exdb/mnist/", ("yann.lecun.com", 80)),
    ("https://example.invalid:8443/w.pth", ("example.invalid", 8443)),
])
def test_check_reachable_probes_the_urls_host_and_port_without_a_global_socket_timeout(network, url, address):
    network.behaviour = "answer"
    assert check_reachable(url, timeout=1.5) is None
    assert network.calls == [(address, 1.5, None)]  # its own timeout; the process-wide one stays unset
    assert socket.getdefaulttimeout() is None


# --- torchvision's data sets


def test_torchvision_folder_is_where_each_class_reads_its_files(tmp_path):
    assert set(ONLINE_DATASETS) == {"fashion_mnist", "mnist", "cifar10"}
    assert torchvision_folder("mnist", tmp_path) == tmp_path / "MNIST" / "raw"
    assert torchvision_folder("fashion_mnist", tmp_path) == tmp_path / "FashionMNIST" / "raw"
    assert torchvision_folder("cifar10", tmp_path) == tmp_path / "cifar-10-batches-py"


def test_unknown_torchvision_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown torchvision data set 'svhn': choose one of fashion_mnist, mnist"):
        open_torchvision_dataset("svhn", tmp_path, train=True)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_dataset_with_course_offline_fails_at_once_with_one_message(monkeypatch, tmp_path, name):
    connections = Connections("answer")
    monkeypatch.setattr(socket, "create_connection", connections)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DatasetUnavailableError) as info:
        open_torchvision_dataset(name, tmp_path, train=True)
    message = str(info.value)
    assert message.startswith(
        f"DATASET = {name!r} is not in {torchvision_folder(name, tmp_path)} and could not be downloaded "
        "(the network is switched off (COURSE_OFFLINE=1)). Without a network choose an offline data set, "
        "DATASET = 'digits' or 'shapes'; or download it on another machine and put ")
    assert isinstance(info.value, RuntimeError)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # `from None`: one message
    assert connections.calls == []


def test_the_message_names_the_files_to_put_by_hand_and_the_offline_choices_given(monkeypatch, tmp_path):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DatasetUnavailableError) as info:
        open_torchvision_dataset("mnist", tmp_path, train=False, offline_choices=("digits",))
    files = ", ".join(name for name, _ in datasets.MNIST.resources)
    assert "train-images-idx3-ubyte.gz" in files
    assert f"put its files ({files}) in {tmp_path / 'MNIST' / 'raw'}." in str(info.value)
    assert "DATASET = 'digits';" in str(info.value)
    with pytest.raises(DatasetUnavailableError) as info:
        open_torchvision_dataset("cifar10", tmp_path, train=True)
    assert str(info.value).endswith(
        f"put cifar-10-python.tar.gz in {tmp_path} (or the files it unpacks to in {tmp_path / 'cifar-10-batches-py'}).")


def test_an_error_opening_files_that_are_on_disk_is_not_hidden_behind_could_not_be_downloaded(
    monkeypatch, tmp_path
):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for filename, _ in datasets.MNIST.resources:
        (raw / Path(filename).stem).write_bytes(b"")

    def broken(self):
        raise RuntimeError("a bug in reading the files")

    monkeypatch.setattr(datasets.MNIST, "_load_data", broken)
    with pytest.raises(RuntimeError, match="^a bug in reading the files$") as info:
        open_torchvision_dataset("mnist", tmp_path, train=True)
    assert not isinstance(info.value, DatasetUnavailableError)


def test_an_error_after_the_download_arrived_is_not_called_a_download_failure(monkeypatch, tmp_path):
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    monkeypatch.setattr(socket, "create_connection", Connections("answer"))
    raw = tmp_path / "MNIST" / "raw"

    def download(self):  # stands in for torchvision's download: the files arrive
        raw.mkdir(parents=True, exist_ok=True)
        for filename, _ in datasets.MNIST.resources:
            (raw / Path(filename).stem).write_bytes(b"")

    def broken(self):
        raise RuntimeError("a bug in reading the files")

    monkeypatch.setattr(datasets.MNIST, "download", download)
    monkeypatch.setattr(datasets.MNIST, "_load_data", broken)
    with pytest.raises(RuntimeError, match="^a bug in reading the files$") as info:
        open_torchvision_dataset("mnist", tmp_path, train=True)
    assert not isinstance(info.value, DatasetUnavailableError)


def test_unreachable_server_is_the_reason_and_nothing_is_downloaded(network, no_downloads, tmp_path):
    with pytest.raises(DatasetUnavailableError,
                       match=r"could not be downloaded \(no connection to www\.cs\.toronto\.edu: .*Connection refused"):
        open_torchvision_dataset("cifar10", tmp_path, train=True)
    assert [address for address, _, _ in network.calls] == [("www.cs.toronto.edu", 443)]
    assert no_downloads == []


def test_a_download_that_breaks_off_after_the_probe_is_reported(network, no_downloads, tmp_path):
    network.behaviour = "answer"
    reason = r"could not be downloaded \(.*download blocked in tests.*\)\."
    with pytest.raises(DatasetUnavailableError, match=r"'cifar10' is not in .* " + reason):
        open_torchvision_dataset("cifar10", tmp_path, train=True)
    assert no_downloads and no_downloads[0].startswith(datasets.CIFAR10.url)
    assert socket.getdefaulttimeout() is None


# --- pretrained weights in the torch.hub cache


def test_cached_weights_path_is_in_torch_homes_hub_checkpoints(hub_cache):
    assert cached_weights_path(WEIGHTS) == hub_cache / WEIGHTS_FILE
    assert WEIGHTS.url.endswith("/" + WEIGHTS_FILE)


def test_cached_weights_are_read_without_any_network(network, no_downloads, hub_cache):
    state = mobilenet_state(seed=1)
    hub_cache.mkdir(parents=True)
    torch.save(state, hub_cache / WEIGHTS_FILE)
    loaded = fetch_weights(WEIGHTS)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)
    assert network.calls == [] and no_downloads == []


def test_a_cached_file_that_would_run_code_is_refused_and_the_code_does_not_run(hub_cache, tmp_path):
    marker = tmp_path / "payload-ran"
    path = hub_cache / WEIGHTS_FILE
    write_unsafe_weights(path, marker)
    with pytest.raises(WeightsUnavailableError) as info:
        fetch_weights(WEIGHTS)
    assert not marker.exists()
    assert f"{WEIGHTS} in the cache cannot be used (UnpicklingError: " in str(info.value)
    assert str(info.value).endswith(f"delete {path} and run again")
    torch.load(path, weights_only=False)  # the payload is real: a plain load runs it
    assert marker.read_text() == "the payload ran"


def test_a_damaged_cached_file_says_to_delete_it(hub_cache):
    hub_cache.mkdir(parents=True)
    (hub_cache / WEIGHTS_FILE).write_bytes(b"half a download")
    cache = re.escape(str(hub_cache))
    with pytest.raises(WeightsUnavailableError, match=rf"in the cache cannot be used .*delete {cache}"):
        fetch_weights(WEIGHTS)


def test_missing_weights_with_course_offline_say_where_to_put_the_file(monkeypatch, hub_cache, no_downloads):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(WeightsUnavailableError) as info:
        fetch_weights(WEIGHTS)
    assert str(info.value) == (
        f"{WEIGHTS} is not in the torch.hub cache ({hub_cache}) and cannot be downloaded "
        "(the network is switched off (COURSE_OFFLINE=1)); to use it offline, put "
        f"{WEIGHTS_FILE} from {WEIGHTS.url} in that folder")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert no_downloads == []


def test_missing_weights_on_an_unreachable_server_are_not_downloaded(network, hub_cache, no_downloads):
    with pytest.raises(WeightsUnavailableError,
                       match=r"cannot be downloaded \(no connection to download\.pytorch\.org"):
        fetch_weights(WEIGHTS)
    assert no_downloads == []
    assert not (hub_cache / WEIGHTS_FILE).exists()


def test_a_download_goes_to_the_cache_with_its_hash_checked(network, monkeypatch, hub_cache):
    network.behaviour = "answer"
    state, downloads = mobilenet_state(seed=2), []

    def download_url_to_file(url, destination, hash_prefix=None, progress=True):
        downloads.append((url, destination, hash_prefix))
        torch.save(state, destination)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    loaded = fetch_weights(WEIGHTS)
    assert downloads == [(WEIGHTS.url, str(hub_cache / WEIGHTS_FILE), "047dcff4")]  # check_hash=True
    assert torch.equal(loaded["features.0.0.weight"], state["features.0.0.weight"])


def test_a_broken_off_weights_download_says_so(network, no_downloads, hub_cache):
    network.behaviour = "answer"
    with pytest.raises(WeightsUnavailableError,
                       match=rf"^{re.escape(str(WEIGHTS))} could not be downloaded: .*blocked"):
        fetch_weights(WEIGHTS)
    assert no_downloads == [WEIGHTS.url]
