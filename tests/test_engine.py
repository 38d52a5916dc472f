import copy
import importlib.util
import io
import sys
import types
import warnings

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset

from helpers import engine
from helpers.data import InMemoryLoader
from helpers.engine import evaluate, fit, format_epoch, predict, train_one_epoch

CPU = torch.device("cpu")


def classification_data(n=10, features=4, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=generator), torch.randint(classes, (n,), generator=generator)


def test_evaluate_averages_exactly_over_examples_with_a_short_last_batch():
    torch.manual_seed(0)
    X, y = classification_data(n=10)
    model = nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(X, y), batch_size=4)  # batches of 4, 4 and 2
    metrics = evaluate(model, loader, nn.CrossEntropyLoss(), CPU)
    with torch.no_grad():
        logits = model(X)
        exact_loss = nn.functional.cross_entropy(logits, y, reduction="sum").item() / 10
        exact_acc = (logits.argmax(1) == y).float().mean().item()
    assert metrics["test_loss"] == pytest.approx(exact_loss, rel=1e-6)
    assert metrics["test_acc"] == pytest.approx(exact_acc)
    per_batch_mean = sum(nn.functional.cross_entropy(model(xb), yb).item() for xb, yb in loader) / 3
    assert metrics["test_loss"] != pytest.approx(per_batch_mean, rel=1e-6)  # the naive average differs


def test_evaluate_leaves_parameters_and_gradients_untouched():
    torch.manual_seed(0)
    X, y = classification_data(n=12)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    before = copy.deepcopy(model.state_dict())
    model.train()
    first = evaluate(model, DataLoader(TensorDataset(X, y), batch_size=5), nn.CrossEntropyLoss(), CPU)
    second = evaluate(model, DataLoader(TensorDataset(X, y), batch_size=5), nn.CrossEntropyLoss(), CPU)
    assert first == second  # eval mode: dropout is off
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_regression_gives_the_exact_loss_and_no_accuracy(reduction):
    X = torch.linspace(0, 1, 9).unsqueeze(1)  # (9, 1)
    y = 2 * X + 1  # float targets, one value per example
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    loader = DataLoader(TensorDataset(X, y), batch_size=4)  # batches of 4, 4 and 1
    loss_fn = nn.MSELoss(reduction=reduction)
    with torch.no_grad():
        exact_loss = ((model(X) - y) ** 2).sum().item() / 9
    assert evaluate(model, loader, loss_fn, CPU) == {"test_loss": pytest.approx(exact_loss, rel=1e-6)}
    unchanged = torch.optim.SGD(model.parameters(), lr=0.0)  # the epoch sees the same model throughout
    train_metrics = train_one_epoch(model, loader, loss_fn, unchanged, CPU)
    assert train_metrics == {"train_loss": pytest.approx(exact_loss, rel=1e-6)}


def test_several_values_per_example_count_with_their_mean_or_their_sum():
    X = torch.linspace(0, 1, 9).unsqueeze(1)
    y = torch.cat([2 * X, -X], dim=1)  # (9, 2): two regression outputs per example
    torch.manual_seed(0)
    model = nn.Linear(1, 2)
    loader = DataLoader(TensorDataset(X, y), batch_size=4)
    with torch.no_grad():
        squared_errors = (model(X) - y) ** 2  # (9, 2)
    mean_loss = evaluate(model, loader, nn.MSELoss(), CPU)["test_loss"]
    sum_loss = evaluate(model, loader, nn.MSELoss(reduction="sum"), CPU)["test_loss"]
    assert mean_loss == pytest.approx(squared_errors.mean(dim=1).mean().item(), rel=1e-6)
    assert sum_loss == pytest.approx(squared_errors.sum(dim=1).mean().item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mean_and_sum_reductions_give_the_same_per_example_average(reduction):
    X, y = classification_data(n=10)
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(X, y), batch_size=4)  # batches of 4, 4 and 2
    unchanged = torch.optim.SGD(model.parameters(), lr=0.0)  # train and test losses see the same model
    with torch.no_grad():
        per_example = [F.cross_entropy(model(X[i : i + 1]), y[i : i + 1]).item() for i in range(10)]
        exact_acc = (model(X).argmax(dim=1) == y).sum().item() / 10
    history = fit(model, loader, loader, nn.CrossEntropyLoss(reduction=reduction), unchanged, 1, CPU,
                  progress="none")
    assert history[0]["train_loss"] == pytest.approx(sum(per_example) / 10, rel=1e-6)
    assert history[0]["test_loss"] == pytest.approx(sum(per_example) / 10, rel=1e-6)
    assert history[0]["train_acc"] == history[0]["test_acc"] == exact_acc


def test_reduction_none_is_a_clear_error_before_any_step():
    X, y = classification_data(n=10)
    model = nn.Linear(4, 3)
    before = copy.deepcopy(model.state_dict())
    loader = DataLoader(TensorDataset(X, y), batch_size=4)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    message = r"reduction='none'.*one number per batch: use reduction='mean' or reduction='sum'"
    with pytest.raises(ValueError, match=message):
        train_one_epoch(model, loader, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1), CPU)
    with pytest.raises(ValueError, match=message):
        evaluate(model, loader, loss_fn, CPU)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


WEIGHT = torch.tensor([0.5, 2.0, 1.0])
CLASS_LOSS_CASES = {  # loss class, its options, targets set to its ignore_index (more may hold a class it ignores)
    "weight": (nn.CrossEntropyLoss, {"weight": WEIGHT}, []),
    "ignore_index in range": (nn.CrossEntropyLoss, {"ignore_index": 0}, [1, 6]),
    "weight, ignored, smoothing": (nn.CrossEntropyLoss, {"weight": WEIGHT, "label_smoothing": 0.1}, [1, 6]),
    "nll weight, ignored": (nn.NLLLoss, {"weight": WEIGHT, "ignore_index": 2}, [3]),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", CLASS_LOSS_CASES)
def test_class_weights_and_ignored_targets_average_like_the_loss_over_the_whole_set(case, reduction):
    loss_class, options, ignored = CLASS_LOSS_CASES[case]
    X, y = classification_data(n=10)
    y[ignored] = options.get("ignore_index", -100)
    torch.manual_seed(0)
    model = nn.Linear(4, 3) if loss_class is nn.CrossEntropyLoss else nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(1))
    loader = DataLoader(TensorDataset(X, y), batch_size=4)  # batches of 4, 4 and 2
    metrics = evaluate(model, loader, loss_class(reduction=reduction, **options), CPU)
    with torch.no_grad():
        outputs = model(X)
        whole_set = loss_class(**options)(outputs, y).item()  # the loss's own mean, all examples in one batch
    kept = y != options.get("ignore_index", -100)
    assert kept.any() and kept.all() == (not ignored)  # the case ignores some targets, or none
    assert metrics["test_loss"] == pytest.approx(whole_set, rel=1e-6)
    assert metrics["test_acc"] == (outputs.argmax(dim=1) == y)[kept].sum().item() / kept.sum().item()


def hand_written_epoch(model, loader, loss_fn, optimizer):
    """The six steps as 03_train writes them out; returns the loss and accuracy added up by hand."""
    model.train()
    loss_sum, correct, count = 0.0, 0, 0
    for X, y in loader:
        logits = model(X)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += len(y)
    return loss_sum / count, correct / count


def test_train_one_epoch_matches_the_hand_written_loop():
    X, y = classification_data(n=23)
    loader = DataLoader(TensorDataset(X, y), batch_size=5)
    torch.manual_seed(1)
    ours = nn.Linear(4, 3)
    theirs = copy.deepcopy(ours)
    metrics = train_one_epoch(ours, loader, nn.CrossEntropyLoss(), torch.optim.SGD(ours.parameters(), 0.1), CPU)
    loss, acc = hand_written_epoch(theirs, loader, nn.CrossEntropyLoss(), torch.optim.SGD(theirs.parameters(), 0.1))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))
    assert metrics == {"train_loss": pytest.approx(loss, rel=1e-12), "train_acc": acc}


def make_fit_setup(seed=0):
    torch.manual_seed(seed)
    X, y = classification_data(n=40)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train = InMemoryLoader(X[:30], y[:30], batch_size=8, shuffle=True, seed=seed)
    test = InMemoryLoader(X[30:], y[30:], batch_size=8)
    return model, optimizer, train, test


def test_fit_returns_one_entry_per_epoch_and_learns():
    model, optimizer, train, test = make_fit_setup()
    history = fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 15, CPU, progress="none")
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert all(isinstance(v, (int, float)) for h in history for v in h.values())


def test_fit_is_reproducible_on_cpu():
    runs = []
    for _ in range(2):
        model, optimizer, train, test = make_fit_setup(seed=3)
        history = fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 3, CPU, progress="none")
        runs.append([{k: v for k, v in h.items() if k != "seconds"} for h in history])
    assert runs[0] == runs[1]


def test_fit_hook_sees_every_epoch_and_can_stop_early():
    model, optimizer, train, test = make_fit_setup()
    seen = []

    def stop_after_two(epoch, metrics):
        seen.append((epoch, metrics["val_loss"]))
        return epoch == 2

    history = fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 10, CPU,
                  on_epoch_end=stop_after_two, progress="none", eval_prefix="val", start_epoch=1)
    assert len(history) == 2
    assert seen == [(h["epoch"], h["val_loss"]) for h in history] and [e for e, _ in seen] == [1, 2]


def test_fit_prints_one_line_per_epoch_or_a_bar(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    model, optimizer, train, test = make_fit_setup()
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="lines", start_epoch=4)
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("epoch   4 | train_loss ") and len(out.splitlines()) == 2
    assert err == ""
    # a bar where nothing can redraw it (captured output, papermill): one clean line per epoch, no fragments
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="bar")
    out, err = capsys.readouterr()
    assert [line[:9] for line in out.splitlines()] == ["epoch   1", "epoch   2"] and err == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_in_a_terminal_is_redrawn_in_place_unless_lines_are_asked_for(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    model, optimizer, train, test = make_fit_setup()
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="bar")
    assert capsys.readouterr().out == "" and "epochs" in terminal.getvalue() and "\r" in terminal.getvalue()
    monkeypatch.setenv("COURSE_PROGRESS", "lines")
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="bar")
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize("widgets, expected", [(True, "widget"), (False, "lines")])
def test_in_a_jupyter_kernel_the_bar_is_a_widget_when_ipywidgets_is_there(monkeypatch, widgets, expected):
    monkeypatch.delenv("COURSE_PROGRESS", raising=False)
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: (object() if widgets else None) if name == "ipywidgets" else real_find_spec(name))
    assert engine._bar_style() == expected
    monkeypatch.setenv("COURSE_PROGRESS", "lines")
    assert engine._bar_style() == "lines"


def test_bad_progress_is_refused():
    model, optimizer, train, test = make_fit_setup()
    with pytest.raises(ValueError, match="progress must be"):
        fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 1, CPU, progress="yes")


def test_format_epoch_shows_accuracy_as_percent():
    line = format_epoch({"epoch": 3, "train_loss": 0.5, "train_acc": 0.875, "seconds": 1.0})
    assert line == "epoch   3 | train_loss 0.5000 | train_acc 87.50%"


def test_predict_on_tensor_and_loader_agree():
    X, y = classification_data(n=11)
    model = nn.Linear(4, 3)
    from_tensor = predict(model, X, CPU)
    from_loader = predict(model, DataLoader(TensorDataset(X, y), batch_size=4), CPU)
    assert from_tensor.shape == (11, 3) and torch.allclose(from_tensor, from_loader)
    with torch.no_grad():
        assert torch.equal(from_tensor, model(X))
    assert not from_tensor.requires_grad


def test_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match="the loader gave no batches"):
        evaluate(nn.Linear(4, 3), [], nn.CrossEntropyLoss(), CPU)


def test_averages_over_many_batches_equal_the_whole_set_and_add_up_in_float64():
    torch.manual_seed(0)
    X, y = classification_data(n=601)
    model = nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(X, y), batch_size=2)  # 301 batches, the last one short
    metrics = evaluate(model, loader, nn.CrossEntropyLoss(), CPU)
    with torch.no_grad():
        whole_set = F.cross_entropy(model(X), y, reduction="mean").item()
        per_batch = [(F.cross_entropy(model(xb), yb).item(), len(yb)) for xb, yb in loader]
        correct = (model(X).argmax(1) == y).sum().item()
    assert metrics["test_loss"] == pytest.approx(whole_set, rel=1e-6)
    in_python_floats = 0.0
    for loss, n in per_batch:  # one .item() per batch, added in order in float64
        in_python_floats += loss * n
    assert metrics["test_loss"] == in_python_floats / 601  # identical: a float32 sum would differ
    assert metrics["test_acc"] == correct / 601


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_epoch_waits_for_the_gpu_only_at_its_end():
    cuda = torch.device("cuda")
    X, y = (t.to(cuda) for t in classification_data(n=300))
    model = nn.Linear(4, 3).to(cuda)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss(weight=WEIGHT.to(cuda), ignore_index=0)

    def synchronisations(batch_size):
        batches = list(zip(X.split(batch_size), y.split(batch_size), strict=True))  # already on the GPU
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_one_epoch(model, batches, loss_fn, optimizer, cuda)
                evaluate(model, batches, loss_fn, cuda)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchronizing" in str(w.message) for w in caught)

    synchronisations(100)  # warm-up: first calls may initialise libraries
    assert synchronisations(100) == synchronisations(10)  # 3 or 30 batches: the same few reads at the end


def _one_of_two_processes(rank: int, port: int, out: str) -> None:
    """Process ``rank`` of two, each with its own unequal share (3 and 5 examples) of the same 8 examples."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        X, y = classification_data(n=8)
        share = slice(0, 3) if rank == 0 else slice(3, 8)
        loader = DataLoader(TensorDataset(X[share], y[share]), batch_size=2 if rank == 0 else 3)  # 2 steps each
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=0.0)  # no change: train_loss is the loss of these weights
        results = {"train": train_one_epoch(ddp, loader, nn.CrossEntropyLoss(), optimizer, CPU),
                   "eval": evaluate(ddp, loader, nn.CrossEntropyLoss(), CPU),
                   "own_share": evaluate(model, loader, nn.CrossEntropyLoss(), CPU)}
        torch.manual_seed(0)
        with_buffers = DistributedDataParallel(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)))
        uneven = DataLoader(TensorDataset(X[8:], y[8:]) if rank == 0 else TensorDataset(X, y), batch_size=3)
        results["uneven"] = evaluate(with_buffers, uneven, nn.CrossEntropyLoss(), CPU)
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_under_ddp_every_process_gets_the_exact_average_over_all_examples(tmp_path, monkeypatch):
    import multiprocessing
    import socket

    if sys.platform.startswith("linux"):
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # the children inherit it: gloo talks over loopback only
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_one_of_two_processes, args=(rank, port, str(tmp_path))) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0, 0]

    torch.manual_seed(0)
    X, y = classification_data(n=8)
    expected = evaluate(nn.Linear(4, 3), DataLoader(TensorDataset(X, y), batch_size=8), nn.CrossEntropyLoss(), CPU)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for results in ranks:
        assert results["train"]["train_loss"] == pytest.approx(expected["test_loss"], abs=1e-6)
        assert results["train"]["train_acc"] == expected["test_acc"]
        assert results["eval"] == pytest.approx(expected, abs=1e-6)
    torch.manual_seed(0)
    with_buffers = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    whole = evaluate(with_buffers, DataLoader(TensorDataset(X, y), batch_size=8), nn.CrossEntropyLoss(), CPU)
    for results in ranks:  # a model with buffers; rank 0's share is empty, rank 1's has 3 batches
        assert results["uneven"] == pytest.approx(whole, abs=1e-6)
    mean_of_means = (ranks[0]["own_share"]["test_loss"] + ranks[1]["own_share"]["test_loss"]) / 2
    assert mean_of_means != pytest.approx(expected["test_loss"], abs=1e-3)  # what averaging the processes would give


@pytest.mark.parametrize("loss_fn", [
    nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="sum"),
    nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0]), ignore_index=1), nn.MSELoss(),
], ids=["mean", "sum", "weight+ignore", "regression"])
def test_cpu_sums_as_python_numbers_equal_the_device_tensor_sums_bit_for_bit(loss_fn):
    from helpers.engine import _Totals

    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(4, 3)
    on_host, as_tensors = _Totals(loss_fn, torch.device("cpu"), model), _Totals(loss_fn, torch.device("cpu"), model)
    as_tensors.on_host = False
    for name, dtype in (("loss_sum", torch.float64), ("weight_sum", torch.float64), ("correct", torch.int64),
                        ("labelled", torch.int64)):
        setattr(as_tensors, name, torch.zeros((), dtype=dtype))
    assert on_host.on_host and isinstance(on_host.loss_sum, float)
    for size in (7, 5, 1):  # a short last batch
        logits = torch.randn(size, 3, generator=generator)
        y = torch.randint(0, 3, (size,), generator=generator)
        target = y if not isinstance(loss_fn, nn.MSELoss) else torch.randn(size, 3, generator=generator)
        loss = loss_fn(logits, target)
        on_host.add(loss, logits, target)
        as_tensors.add(loss, logits, target)
    assert on_host.result("test") == as_tensors.result("test")


def segmentation_batches(generator, ignore_index):
    """Batches of per-pixel class targets: 3 classes, images of two widths, some pixels ignored."""
    for width in (4, 4, 6, 4):
        logits = torch.randn(2, 3, 5, width, generator=generator)
        y = torch.randint(0, 3, (2, 5, width), generator=generator)
        y[0, 0, :2] = ignore_index
        yield logits, y


@pytest.mark.parametrize("loss_fn", [
    nn.CrossEntropyLoss(), nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0]), ignore_index=1),
    nn.CrossEntropyLoss(reduction="sum"), nn.MSELoss(),
], ids=["mean", "weight+ignore", "sum", "regression"])
def test_cpu_batches_counted_in_groups_give_the_numbers_of_one_batch_at_a_time(loss_fn, monkeypatch):
    from helpers.engine import _Totals

    def totals(group, batches):
        monkeypatch.setattr(_Totals, "HOST_GROUP", group)
        counter = _Totals(loss_fn, CPU, nn.Linear(4, 3))
        for logits, target in batches:
            counter.add(loss_fn(logits, target), logits, target)
            assert len(counter.pending) < group  # never more than a group held
        return counter.result("test")

    generator = torch.Generator().manual_seed(0)
    batches = []
    for size in [64] * 150 + [17]:  # groups of 64 batches, then a short group and a short last batch
        logits = torch.randn(size, 3, generator=generator)
        target = torch.randint(0, 3, (size,), generator=generator)
        batches.append((logits, target if not isinstance(loss_fn, nn.MSELoss) else torch.randn(size, 3)))
    one_at_a_time = totals(1, batches)
    assert totals(64, batches) == one_at_a_time
    assert totals(7, batches) == one_at_a_time
    if not isinstance(loss_fn, nn.MSELoss):  # targets of several shapes cannot be joined: counted one by one
        images = list(segmentation_batches(generator, loss_fn.ignore_index))
        assert totals(64, images) == totals(1, images)


def test_the_cpu_holds_outputs_of_at_most_about_a_million_numbers():
    from helpers.engine import _Totals

    counter = _Totals(nn.CrossEntropyLoss(), CPU, nn.Linear(4, 3))
    logits, y = torch.zeros(256, 1024), torch.zeros(256, dtype=torch.int64)  # 2**18 numbers a batch
    held = []
    for _ in range(10):
        counter.add(torch.tensor(1.0), logits, y)
        held.append(len(counter.pending))
    assert held == [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]  # the fourth batch reaches 2**20: the group is counted


def test_the_cpu_keeps_only_the_outputs_own_numbers_of_a_view_into_a_larger_tensor():
    from helpers.engine import _Totals

    counter = _Totals(nn.CrossEntropyLoss(), CPU, nn.Linear(4, 3))
    hidden = torch.randn(64, 10, 4096)
    counter.add(torch.tensor(1.0), hidden[:, :, 0], torch.zeros(64, dtype=torch.int64))  # a view: 10 MiB behind it
    held = counter.pending[0][1]
    assert held.untyped_storage().nbytes() == 64 * 10 * 4 and torch.equal(held, hidden[:, :, 0])


def test_accuracy_counts_a_tie_or_nan_as_argmax_does():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (200, 4), generator=generator).float()  # many rows with tied maxima
    logits[torch.rand(200, 4, generator=generator) < 0.05] = float("nan")
    y = torch.randint(0, 4, (200,), generator=generator)

    class Given(nn.Module):
        def forward(self, index):
            return logits[index]

    loader = DataLoader(TensorDataset(torch.arange(200), y), batch_size=16)
    metrics = evaluate(Given(), loader, nn.CrossEntropyLoss(), CPU)
    assert metrics["test_acc"] == (logits.argmax(dim=1) == y).sum().item() / 200
    any_top_label = (logits.gather(1, y[:, None]).squeeze(1) == logits.max(1).values).sum().item() / 200
    assert metrics["test_acc"] < any_top_label  # the ties matter: counting every tied label would give more
