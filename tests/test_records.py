import json

import pytest
import torch

from helpers.records import RECORD_MIME, read_records, record


def notebook_with(outputs_per_cell):
    cells = [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": i + 1, "outputs": outputs}
             for i, outputs in enumerate(outputs_per_cell)]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def record_output(values, headline=None):
    return {"output_type": "display_data", "metadata": {},
            "data": {RECORD_MIME: {"values": values, "headline": headline}, "text/plain": "recorded"}}


def test_read_records_merges_cells_and_keeps_headline(tmp_path):
    path = tmp_path / "nb.ipynb"
    nb = notebook_with([[record_output({"a": 1})],
                        [{"output_type": "stream", "name": "stdout", "text": "hi"}],
                        [record_output({"b": 0.5, "a": 2}, headline="b")]])
    path.write_text(json.dumps(nb))
    assert read_records(path) == {"_headline": "b", "a": 2, "b": 0.5}


def test_record_displays_plain_values(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    assert record(headline="acc", acc=torch.tensor(0.96875), epochs=3, device="cpu", ok=True) is None
    payload = shown[0][RECORD_MIME]
    assert payload == {"values": {"acc": 0.96875, "epochs": 3, "device": "cpu", "ok": True}, "headline": "acc"}
    assert shown[0]["text/plain"] == "recorded: acc = 0.9688, epochs = 3, device = cpu, ok = True"
    json.dumps(payload)  # must be storable in the notebook


def test_record_refuses_what_a_notebook_cannot_store():
    with pytest.raises(ValueError, match="headline 'loss' is not one of the recorded names"):
        record(headline="loss", acc=1.0)
    with pytest.raises(ValueError, match="not finite"):
        record(acc=float("nan"))
    with pytest.raises(TypeError, match="got list"):
        record(acc=[1, 2])
