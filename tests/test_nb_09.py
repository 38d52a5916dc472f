"""Papermill runs of notebooks/09_transfer_learning.ipynb: an offline SMOKE run and bad parameters."""

from __future__ import annotations

import json

import pytest

from tests.nbrun import execute, execute_expecting_error

pytestmark = pytest.mark.notebook

NAME = "09_transfer_learning"


@pytest.fixture
def offline_kernel(monkeypatch, tmp_path):
    """The kernel inherits this environment: an empty torch.hub cache, and a proxy on a closed local port,
    so the notebook's download attempt is refused at once without any network traffic."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def printed(tmp_path) -> str:
    cells = json.loads((tmp_path / f"{NAME}.out.ipynb").read_text(encoding="utf-8"))["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_smoke_run_offline_transfers_from_the_self_pretrained_backbone(tmp_path, offline_kernel):
    values = execute(NAME, tmp_path, SMOKE=True)
    assert values["backbone_source"] == "self-pretrained TinyVGG (source task: digits 0-4)"
    assert values["epochs"] == 5 and values["labelled_per_class"] == 5  # SMOKE caps the default 15 epochs at 5
    extraction, fine_tuning, scratch = (values[k] for k in ("feature_extraction_acc", "fine_tuning_acc",
                                                            "from_scratch_acc"))
    assert values["_headline"] in ("feature_extraction_acc", "fine_tuning_acc")
    assert values[values["_headline"]] == max(extraction, fine_tuning)
    # 5 epochs on 25 labelled images: transfer is far above chance (0.2), from scratch is not there yet.
    assert 0.45 < extraction <= 1 and 0.45 < fine_tuning <= 1
    assert 0.1 < scratch < max(extraction, fine_tuning) - 0.1
    # One explanation of why ImageNet weights were not used, naming the file to put in the cache.
    text = printed(tmp_path)
    assert text.count("ImageNet weights are not available") == 1
    assert "mobilenet_v3_small-047dcff4.pth is cached: False" in text
    assert "put mobilenet_v3_small-047dcff4.pth from https://download.pytorch.org" in text
    assert len(list((tmp_path / "data" / "pretrained").glob("tinyvgg_digits0-4_*.pt"))) == 1
    assert (tmp_path / "runs" / "transfer_comparison.png").stat().st_size > 1000


@pytest.mark.parametrize(("name", "value"), [("WEIGHTS", "imagenet"), ("LABELLED_PER_CLASS", 88)])
def test_bad_parameter_stops_before_anything_is_written(tmp_path, name, value):
    error = execute_expecting_error(NAME, tmp_path, **{name: value})
    assert error.startswith("ParameterError:") and f"{name} = {value!r}" in error
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()
