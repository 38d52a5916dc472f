"""benchmarks/bench_training.py: a --tiny run prints its table, the same-work check and the verdicts.

The speed targets themselves are judged by `make bench`, never here: the machine running the
tests is shared and noisy. Lightning is optional (only `make bench` installs it): the tests that
need it are skipped without it, and the others pass either way.
"""

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch

from helpers.data import TensorPairDataset, load_digits
from helpers.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "benchmarks" / "bench_training.py"
spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

MODEL_NAMES = list(bench.MODELS)
NEEDS_LIGHTNING = "lightning is optional (pip install -e '.[bench]' or make bench installs it)"
HEADER = ["#", "contender", "per-epoch samples/s", "min", "max", "x plain", "x ceiling", "fixed s",
          "final test loss"]


def table_rows(output, model_name):
    """{contender number: the row's cells by column name} for one model's table."""
    block = output.split(f"\n{model_name} (", 1)[1].split("\n* not the loop", 1)[0]
    lines = block.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("#  contender"))
    assert re.split(r" {2,}", lines[header_at]) == HEADER
    return {int(cells[0]): dict(zip(HEADER, cells, strict=True))
            for cells in (re.split(r" {2,}", line.strip()) for line in lines[header_at + 2:])}


def small_work(epochs):
    """The MLP on 100 training and 50 test digits: enough for every contender to run in a blink."""
    images, labels = load_digits()
    torch.manual_seed(0)
    return bench.Work(bench.MODELS["MLP"](), images[:100], labels[:100], images[100:150], labels[100:150],
                      batch_size=32, learning_rate=0.003, epochs=epochs, seed=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def tiny_output(tmp_path_factory):
    """The output of one --tiny run in a fresh interpreter, from an empty working directory."""
    workdir = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(workdir.iterdir()) == []  # no logs or checkpoints left behind (Lightning's included)
    return done.stdout


def test_tiny_run_prints_a_row_per_contender_for_each_model(tiny_output):
    assert "2 epochs per run, 1 repeats round-robin (--tiny: checks that it runs, measures nothing)" in tiny_output
    measured = {1, 2, 3, 4, 5} if bench.lightning_available() else {1, 2, 3, 5}
    for model_name in MODEL_NAMES:
        rows = table_rows(tiny_output, model_name)
        assert [(number, row["contender"]) for number, row in rows.items()] == list(enumerate(bench.CONTENDERS, 1))
        for number in measured:
            row = rows[number]
            assert int(row["per-epoch samples/s"].replace(",", "")) > 0
            assert row["min"] == row["max"] == row["per-epoch samples/s"]  # one repeat
            assert re.fullmatch(r"-?\d+\.\d{3}", row["fixed s"])
            assert 0 < float(row["final test loss"]) < 5  # cross-entropy of 10 classes starts near 2.3
            # 3 and 5 differ from the plain loop by their data path: their "x plain" carries the footnote's mark
            assert re.fullmatch(r"\d+\.\d\dx\*" if number in (3, 5) else r"\d+\.\d\dx", row["x plain"])
        assert rows[1]["x plain"] == "1.00x" and rows[5]["x ceiling"] == "1.00x"
        if 4 not in measured:
            assert set(rows[4].values()) == {"4", bench.LIGHTNING, "-"}
    assert tiny_output.count("* not the loop: 3 and 5 read batches sliced from tensors on the device") == 2
    assert len(re.findall(r"3 runs the same fit as 2: the data path alone is 3 / 2 = \d+\.\d\dx$", tiny_output,
                          re.MULTILINE)) == 2


def test_the_dataloader_contenders_end_at_the_same_loss(tiny_output):
    names = "plain loop (DataLoader), fit (DataLoader)" + (", Lightning Trainer" if bench.lightning_available() else "")
    for model_name in MODEL_NAMES:
        rows = table_rows(tiny_output, model_name)
        assert rows[1]["final test loss"] == rows[2]["final test loss"]
        assert f"same work {model_name}: {names} end at the same test loss to 5 decimals: yes" in tiny_output
        assert rows[3]["final test loss"] == rows[5]["final test loss"]  # the in-memory path and the ceiling alike


def test_a_verdict_line_per_target_and_model(tiny_output):
    verdicts = re.findall(r"^verdict (\w+), per epoch: (.+?) +(?:\d+\.\d{3}x|-)  (PASS|MISS|SKIP)$", tiny_output,
                          re.MULTILINE)
    assert [(model, claim) for model, claim, _ in verdicts] == [
        (model, target.claim()) for model in MODEL_NAMES for target in bench.TARGETS
    ]
    lightning_verdicts = {outcome for _, claim, outcome in verdicts if "Lightning" in claim}
    assert lightning_verdicts <= ({"PASS", "MISS"} if bench.lightning_available() else {"SKIP"})


def test_without_lightning_it_says_why_once_and_skips_its_row_and_verdict(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightning", None)  # as if not installed: find_spec and import both fail
    monkeypatch.setattr(bench, "import_lightning", lambda: pytest.fail("the Lightning contender ran"))
    assert not bench.lightning_available()
    assert bench.main(["--tiny", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert output.count("lightning is not importable") == 1  # once for the run, not once per table
    assert ('Lightning Trainer skipped: lightning is not importable (pip install "lightning>=2.4", or make bench)\n'
            in output)
    for model_name in MODEL_NAMES:
        assert set(table_rows(output, model_name)[4].values()) == {"4", bench.LIGHTNING, "-"}
        assert re.search(rf"^verdict {model_name}, per epoch: fit \(DataLoader\) faster than Lightning Trainer"
                         r" +-  SKIP$", output, re.MULTILINE)
        assert f"same work {model_name}: plain loop (DataLoader), fit (DataLoader) end at" in output


@pytest.mark.parametrize("name", [bench.PLAIN, bench.FIT_LOADER, bench.FIT_MEMORY, bench.LIGHTNING, bench.CEILING])
def test_every_contender_clocks_each_epoch_and_the_loader_ones_share_one_data_set_class(name, monkeypatch):
    if name == bench.LIGHTNING:
        pytest.importorskip("lightning", reason=NEEDS_LIGHTNING)
    made, reads = [], [0]

    class CountedDataset(TensorPairDataset):
        def __init__(self, X, y):
            super().__init__(X, y)
            made.append(len(X))

        def __getitem__(self, index):
            reads[0] += 1
            return super().__getitem__(index)

    monkeypatch.setattr(bench, "TensorPairDataset", CountedDataset)
    watch, model = bench.CONTENDERS[name](small_work(epochs=3))
    assert len(watch.epoch_ends) == 3  # one reading per epoch, after its test pass
    assert watch.started < watch.epoch_ends[0] < watch.epoch_ends[1] < watch.epoch_ends[2] <= watch.finished
    through_a_dataloader = name in (bench.PLAIN, bench.FIT_LOADER, bench.LIGHTNING)
    assert made == ([100, 50] if through_a_dataloader else [])
    assert reads[0] == (3 * (100 + 50) if through_a_dataloader else 0)  # every example of every epoch, from it
    assert next(model.parameters()).device == torch.device("cpu")


def test_lightning_trains_the_same_model_as_the_plain_loop():
    pytest.importorskip("lightning", reason=NEEDS_LIGHTNING)
    work = small_work(epochs=2)  # 100 images, batches of 32: a short last batch, as in the full set
    losses = [bench.final_test_loss(bench.CONTENDERS[name](work)[1], work) for name in (bench.PLAIN, bench.LIGHTNING)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_a_run_splits_into_seconds_per_epoch_and_fixed_seconds():
    readings = iter([10.0, 11.5, 12.5, 13.5, 14.25])  # start, three epoch ends, end
    watch = bench.Stopwatch(dataclasses.replace(small_work(epochs=3), clock=lambda: next(readings)))
    for _ in range(3):
        watch.epoch_done()
    per_epoch, fixed = bench.split_seconds(watch.stop())
    assert per_epoch == 1.0  # epochs 2 and 3: from 11.5 to 13.5
    assert fixed == 1.25  # 4.25 s in all, less 3 epochs of 1 s
    one_epoch = bench.Stopwatch(small_work(epochs=1))
    one_epoch.epoch_done()
    with pytest.raises(ValueError, match="needs at least 2 epoch ends, got 1"):
        bench.split_seconds(one_epoch.stop())


def test_verdicts_compare_paired_ratios_with_the_targets():
    results = {
        bench.PLAIN: bench.Result([100.0, 200.0, 100.0], [0.01] * 3, [0.1] * 3),
        bench.FIT_LOADER: bench.Result([95.0, 150.0, 100.0], [0.5] * 3, [0.1] * 3),  # per repeat: 0.95, 0.75, 1.0
    }
    ratio = bench.paired_ratio(results, bench.FIT_LOADER, bench.PLAIN)
    assert ratio == pytest.approx(0.95)  # the median of the per-repeat ratios, not of the speeds
    at_least, faster = bench.Target("a", "b", 0.95), bench.Target("a", "b", 1.0, strict=True)
    assert bench.verdict(ratio, at_least) == "PASS" and bench.verdict(0.9499, at_least) == "MISS"
    assert bench.verdict(1.0, faster) == "MISS" and bench.verdict(1.01, faster) == "PASS"
    assert bench.paired_ratio(results, bench.FIT_LOADER, bench.LIGHTNING) is None
    assert bench.verdict(None, faster) == "SKIP"


def test_the_timed_imports_run():
    assert list(bench.IMPORTS) == ["import torch", "import helpers", bench.TRAINING_API]
    for statement in bench.IMPORTS.values():  # in this process: a statement that fails would stop a full run
        exec(statement, {})


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "1"], "--epochs must be at least 2, got 1"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--threads", "-1"], "--threads must be 0 or more, got -1"),
    (["--device", "tpu"], "--device: DEVICE = 'tpu' is not allowed"),
])
def test_bad_options_stop_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        bench.parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_the_benchmark_trains_on_the_digits_split_of_load_data(monkeypatch):
    class SplitTaken(Exception):
        pass

    calls = []

    def spy(name, seed):
        calls.append((name, seed))
        raise SplitTaken  # stop before any training

    monkeypatch.setattr(bench, "load_data", spy)
    with pytest.raises(SplitTaken):
        bench.main(["--tiny", "--device", "cpu", "--seed", "5"])
    assert calls == [("digits", 5)]
