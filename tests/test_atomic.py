"""helpers.atomic: atomic writes, the user's usual permissions, and errors that name the real cause."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from helpers.atomic import SaveError, atomic_save, save_json, write_atomically
from helpers.checkpoint import safe_load


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("save", [lambda path: atomic_save({"w": torch.ones(2)}, path),
                                  lambda path: save_json({"epoch": 1}, path),
                                  lambda path: write_atomically(path, b"bytes")], ids=["torch", "json", "bytes"])
def test_saved_files_get_the_mode_the_umask_gives_new_files(tmp_path, umask, mask, mode, save):
    umask(mask)
    path = save(tmp_path / "file")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert os.listdir(tmp_path) == ["file"]


def test_save_json_writes_json_atomically(tmp_path):
    record = {"config": {"epochs": 2, "device": "cpu"}, "history": [{"epoch": 1, "test_acc": 0.5}]}
    assert save_json(record, tmp_path / "history.json") == tmp_path / "history.json"
    assert json.loads((tmp_path / "history.json").read_text()) == record
    with pytest.raises(SaveError, match=r"could not save .*history\.json \(TypeError: Object of type set.*"
                                        r"any earlier file there is unchanged: save only numbers, strings"):
        save_json({"history": {1, 2}}, tmp_path / "history.json")
    assert os.listdir(tmp_path) == ["history.json"]
    assert json.loads((tmp_path / "history.json").read_text()) == record


def test_save_json_failing_part_way_keeps_the_earlier_file(tmp_path, monkeypatch):
    save_json({"epoch": 1}, tmp_path / "history.json")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(SaveError, match=r"could not save .*history\.json \(Input/output error\)"):
        save_json({"epoch": 2}, tmp_path / "history.json")
    assert os.listdir(tmp_path) == ["history.json"]
    assert json.loads((tmp_path / "history.json").read_text()) == {"epoch": 1}


def test_values_checked_before_saving_include_dict_keys_and_a_dict_that_holds_itself(tmp_path):
    with pytest.raises(SaveError, match=r"cannot save a key in config\['sizes'\] in c\.pt: a numpy\.int64"):
        atomic_save({"config": {"sizes": {np.int64(1): 2}}}, tmp_path / "c.pt")
    config = {"name": "loop"}
    config["self"] = config  # pickle and weights_only both handle a cycle
    atomic_save({"config": config}, tmp_path / "c.pt")
    assert safe_load(tmp_path / "c.pt")["config"]["self"]["self"]["name"] == "loop"


# The repro of issue 15: a file-size limit of 100 kB, and a 4 MB tensor. SIGXFSZ would kill the process
# at the limit; ignored, the write fails with EFBIG ("File too large") as it does on a full disk (ENOSPC).
FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    import torch
    from {module} import atomic_save
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        atomic_save({{"w": torch.zeros(1_000_000)}}, sys.argv[1])
    except Exception as error:
        print(type(error).__name__, error)
""")


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs Linux's RLIMIT_FSIZE")
@pytest.mark.parametrize("module", ["helpers.atomic"])
def test_a_file_size_limit_is_reported_as_the_os_error_not_as_the_users_data(tmp_path, module):
    path = tmp_path / "big.pt"
    atomic_save({"w": torch.ones(3)}, path)
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT.format(module=module), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SaveError could not save "), done.stdout
    assert "(File too large)" in done.stdout and "allows a file this size" in done.stdout
    assert "save only" not in done.stdout
    assert torch.equal(safe_load(path)["w"], torch.ones(3)), "the earlier file is unchanged"
    assert os.listdir(tmp_path) == ["big.pt"]
