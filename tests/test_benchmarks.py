"""benchmarks/bench_training.py: a --tiny run prints its table, the same-work check and the verdicts.

The speed targets themselves are judged by `make bench`, never here: the machine running the
tests is shared and noisy.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from helpers.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "benchmarks" / "bench_training.py"
spec = importlib.util.spec_from_file_location("bench_training", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)

MODEL_NAMES = list(bench.MODELS)
ROW = re.compile(r"^  (\d) (\D+?) +([\d,]+) +([\d,]+) +([\d,]+) +([\d.]+)x +([\d.]+)x +(\d+\.\d{5})$")


def table_rows(output, model_name):
    """{contender number: final test loss} for the rows of one model's table, and the skipped rows' text."""
    block = output.split(f"\n{model_name} (", 1)[1].split("\nsame work", 1)[0]
    losses, skipped = {}, {}
    for line in block.splitlines()[2:]:
        match = ROW.match(line)
        if match:
            losses[int(match[1])] = float(match[8])
        else:
            skipped[int(line.split()[0])] = line
    return losses, skipped


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
    assert "--tiny: checks that it runs, measures nothing" in tiny_output
    for model_name in MODEL_NAMES:
        losses, skipped = table_rows(tiny_output, model_name)
        if bench.lightning_available():
            assert set(losses) == {1, 2, 3, 4, 5} and not skipped
        else:
            assert set(losses) == {1, 2, 3, 5} and "lightning is not importable" in skipped[4]
        assert all(0 < loss < 5 for loss in losses.values())  # cross-entropy of 10 classes starts near 2.3


def test_plain_loop_and_fit_end_at_the_same_loss(tiny_output):
    for model_name in MODEL_NAMES:
        losses, _ = table_rows(tiny_output, model_name)
        assert f"{losses[1]:.5f}" == f"{losses[2]:.5f}"
        assert f"same work {model_name}: plain loop (DataLoader) and fit (DataLoader) end at the same test " \
               "loss to 5 decimals: yes" in tiny_output
        assert f"{losses[3]:.5f}" == f"{losses[5]:.5f}"  # the in-memory path and the ceiling shuffle alike


def test_a_verdict_line_per_target_and_model(tiny_output):
    verdicts = re.findall(r"^verdict (\w+): (.+?) +(?:[\d.]+x|-)  (PASS|MISS|SKIP)$", tiny_output, re.MULTILINE)
    assert [(model, claim) for model, claim, _ in verdicts] == [
        (model, target.claim()) for model in MODEL_NAMES for target in bench.TARGETS
    ]
    lightning_verdicts = {outcome for _, claim, outcome in verdicts if "Lightning" in claim}
    assert lightning_verdicts <= ({"PASS", "MISS"} if bench.lightning_available() else {"SKIP"})


def test_without_lightning_its_row_and_verdict_say_skipped(monkeypatch, capsys):
    monkeypatch.setattr(bench, "lightning_available", lambda: False)
    monkeypatch.setattr(bench, "MODELS", {"MLP": bench.MODELS["MLP"]})
    assert bench.main(["--tiny", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert re.search(r'^  4 Lightning Trainer +skipped: lightning is not importable \(pip install "lightning>=2.4"\)$',
                     output, re.MULTILINE)
    assert re.search(r"^verdict MLP: fit \(DataLoader\) faster than Lightning Trainer +-  SKIP$", output, re.MULTILINE)


def test_verdicts_compare_paired_ratios_with_the_targets():
    results = {
        bench.PLAIN: bench.Result([100.0, 200.0, 100.0], [0.1] * 3),
        bench.FIT_LOADER: bench.Result([95.0, 150.0, 100.0], [0.1] * 3),  # per repeat: 0.95, 0.75, 1.0
    }
    ratio = bench.paired_ratio(results, bench.FIT_LOADER, bench.PLAIN)
    assert ratio == pytest.approx(0.95)  # the median of the per-repeat ratios, not of the speeds
    at_least, faster = bench.Target("a", "b", 0.95), bench.Target("a", "b", 1.0, strict=True)
    assert bench.verdict(ratio, at_least) == "PASS" and bench.verdict(0.9499, at_least) == "MISS"
    assert bench.verdict(1.0, faster) == "MISS" and bench.verdict(1.01, faster) == "PASS"
    assert bench.paired_ratio(results, bench.FIT_LOADER, bench.LIGHTNING) is None
    assert bench.verdict(None, faster) == "SKIP"


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--repeats", "-1"], "--repeats must be at least 1, got -1"),
    (["--device", "tpu"], "--device: DEVICE = 'tpu' is not allowed"),
])
def test_bad_options_stop_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        bench.parse_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err
