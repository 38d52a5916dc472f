import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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


def test_regression_has_no_accuracy():
    X = torch.linspace(0, 1, 9).unsqueeze(1)
    metrics = evaluate(nn.Linear(1, 1), DataLoader(TensorDataset(X, 2 * X), batch_size=4), nn.L1Loss(), CPU)
    assert set(metrics) == {"test_loss"}


def hand_written_epoch(model, loader, loss_fn, optimizer):
    """The six steps as 03_train writes them out."""
    model.train()
    for X, y in loader:
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_train_one_epoch_matches_the_hand_written_loop():
    X, y = classification_data(n=23)
    loader = DataLoader(TensorDataset(X, y), batch_size=5)
    torch.manual_seed(1)
    ours = nn.Linear(4, 3)
    theirs = copy.deepcopy(ours)
    metrics = train_one_epoch(ours, loader, nn.CrossEntropyLoss(), torch.optim.SGD(ours.parameters(), 0.1), CPU)
    hand_written_epoch(theirs, loader, nn.CrossEntropyLoss(), torch.optim.SGD(theirs.parameters(), 0.1))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))
    assert set(metrics) == {"train_loss", "train_acc"} and 0 <= metrics["train_acc"] <= 1


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
    assert len(history) == 2 and [e for e, _ in seen] == [1, 2]
    assert "val_loss" in history[0]


def test_fit_prints_one_line_per_epoch_or_a_bar(capsys):
    model, optimizer, train, test = make_fit_setup()
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="lines", start_epoch=4)
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("epoch   4 | train_loss ") and len(out.splitlines()) == 2
    assert err == ""
    fit(model, train, test, nn.CrossEntropyLoss(), optimizer, 2, CPU, progress="bar")
    out, err = capsys.readouterr()
    assert out == "" and "epochs" in err
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
    assert not from_tensor.requires_grad


def test_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match="the loader gave no batches"):
        evaluate(nn.Linear(4, 3), [], nn.CrossEntropyLoss(), CPU)


def test_averages_stay_exact_over_many_batches_read_in_chunks():
    torch.manual_seed(0)
    X, y = classification_data(n=601)
    model = nn.Linear(4, 3)
    loader = DataLoader(TensorDataset(X, y), batch_size=2)  # 301 batches: values are read in more than one chunk
    metrics = evaluate(model, loader, nn.CrossEntropyLoss(), CPU)
    with torch.no_grad():
        per_batch = [(nn.functional.cross_entropy(model(xb), yb).item(), len(yb)) for xb, yb in loader]
        correct = (model(X).argmax(1) == y).sum().item()
    expected = 0.0
    for loss, n in per_batch:  # one .item() per batch, summed in order: the old, slow way
        expected += loss * n
    assert metrics["test_loss"] == expected / 601  # identical, not just close
    assert metrics["test_acc"] == correct / 601
