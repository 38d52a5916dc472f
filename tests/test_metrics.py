"""Tests of helpers/metrics.py: the collection against scikit-learn, hand-written accuracy, worst mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score
from torchmetrics.classification import MulticlassAccuracy

from helpers.device import make_generator
from helpers.metrics import accuracy, make_classification_metrics, most_confident_mistakes

NUM_CLASSES = 5


def random_labels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """True and predicted labels drawn with a fixed generator (about 20% right by chance)."""
    generator = make_generator(seed)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    predicted = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    return labels, predicted


def compute_in_batches(predictions: torch.Tensor, labels: torch.Tensor, batch_size: int = 16) -> dict:
    """Feed the collection batch by batch (with a short last batch), as a notebook does."""
    metrics = make_classification_metrics(NUM_CLASSES)
    for start in range(0, len(labels), batch_size):
        metrics.update(predictions[start:start + batch_size], labels[start:start + batch_size])
    return metrics.compute()


def sklearn_metrics(labels: torch.Tensor, predicted: torch.Tensor) -> dict[str, object]:
    y_true, y_pred = labels.numpy(), predicted.numpy()
    return {
        "accuracy_micro": accuracy_score(y_true, y_pred),
        "precision_macro": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=range(NUM_CLASSES)),
    }


def assert_match_sklearn(results: dict, labels: torch.Tensor, predicted: torch.Tensor) -> None:
    expected = sklearn_metrics(labels, predicted)
    for name in ("accuracy_micro", "precision_macro", "recall_macro", "f1_macro"):
        assert results[name].item() == pytest.approx(expected[name], abs=1e-6), name
    np.testing.assert_array_equal(results["confusion_matrix"].numpy(), expected["confusion_matrix"])


def test_collection_names_its_averages():
    metrics = make_classification_metrics(NUM_CLASSES)
    assert sorted(metrics.keys()) == ["accuracy_macro", "accuracy_micro", "confusion_matrix",
                                      "f1_macro", "precision_macro", "recall_macro"]
    for name, metric in metrics.items():
        if name != "confusion_matrix":
            assert metric.average == name.split("_")[1], name


def test_random_predictions_match_sklearn():
    labels, predicted = random_labels(203, seed=0)  # 203: the last batch of 16 is short
    assert_match_sklearn(compute_in_batches(predicted, labels), labels, predicted)


def test_logits_give_the_same_metrics_as_their_argmax():
    labels, _ = random_labels(100, seed=1)
    logits = torch.randn(100, NUM_CLASSES, generator=make_generator(2))
    results = compute_in_batches(logits, labels)
    assert_match_sklearn(results, labels, logits.argmax(dim=1))


def test_class_never_predicted_matches_sklearn():
    labels, predicted = random_labels(150, seed=3)
    predicted[predicted == 2] = 0  # class 2 occurs in labels but is never predicted
    assert (labels == 2).any() and not (predicted == 2).any()
    results = compute_in_batches(predicted, labels)
    assert_match_sklearn(results, labels, predicted)
    assert results["confusion_matrix"][:, 2].sum() == 0


def test_macro_accuracy_is_mean_recall_and_differs_from_micro_on_imbalanced_data():
    labels = torch.tensor([0] * 8 + [1, 2])
    predicted = torch.tensor([0] * 8 + [0, 0])  # always the majority class
    results = compute_in_batches(predicted, labels)
    assert results["accuracy_micro"].item() == pytest.approx(0.8)
    assert results["accuracy_macro"].item() == pytest.approx(1 / 3)  # classes 0, 1, 2: recall 1, 0, 0
    assert results["accuracy_macro"].item() == pytest.approx(results["recall_macro"].item())


def test_collection_follows_to_device():
    metrics = make_classification_metrics(NUM_CLASSES).to(torch.device("meta"))
    for name, metric in metrics.items():
        assert metric.device.type == "meta", name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_collection_on_cuda_matches_cpu():
    labels, predicted = random_labels(203, seed=4)
    metrics = make_classification_metrics(NUM_CLASSES).to(torch.device("cuda"))
    metrics.update(predicted.cuda(), labels.cuda())
    results = {name: value.cpu() for name, value in metrics.compute().items()}
    assert_match_sklearn(results, labels, predicted)


@pytest.mark.parametrize("bad", [1, 0, 2.0, True, "10"])
def test_bad_num_classes_is_refused(bad):
    with pytest.raises(ValueError, match="num_classes"):
        make_classification_metrics(bad)


def test_hand_written_accuracy_matches_torchmetrics_and_sklearn():
    labels, predicted = random_labels(203, seed=5)
    expected = MulticlassAccuracy(NUM_CLASSES, average="micro")(predicted, labels).item()
    result = accuracy(predicted, labels)
    assert isinstance(result, float) and 0 <= result <= 1
    assert result == pytest.approx(expected, abs=1e-6)
    assert result == accuracy_score(labels.numpy(), predicted.numpy())


def test_accuracy_of_known_values():
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    assert accuracy(torch.tensor([3, 3]), torch.tensor([3, 3])) == 1.0


def test_accuracy_refuses_logits_mismatch_and_empty_input():
    with pytest.raises(ValueError, match="argmax"):
        accuracy(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="same shape"):
        accuracy(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))


def test_most_confident_mistakes_orders_wrong_predictions_by_confidence():
    probs = torch.tensor([
        [0.90, 0.05, 0.05],  # 0: right
        [0.10, 0.60, 0.30],  # 1: wrong, 0.60
        [0.05, 0.05, 0.90],  # 2: wrong, 0.90
        [0.20, 0.70, 0.10],  # 3: right
        [0.75, 0.20, 0.05],  # 4: wrong, 0.75
    ])
    labels = torch.tensor([0, 0, 1, 1, 2])
    assert most_confident_mistakes(probs, labels, k=2).tolist() == [2, 4]
    assert most_confident_mistakes(probs, labels, k=10).tolist() == [2, 4, 1]  # only 3 mistakes
    assert most_confident_mistakes(probs, labels, k=0).tolist() == []
    assert most_confident_mistakes(probs, probs.argmax(dim=1), k=5).tolist() == []


def test_most_confident_mistakes_refuses_bad_input():
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="softmax"):
        most_confident_mistakes(torch.tensor([[2.0, -1.0], [0.5, 3.0]]), labels, k=1)  # logits
    with pytest.raises(ValueError, match="rows"):
        most_confident_mistakes(torch.full((3, 2), 0.5), labels, k=1)
    with pytest.raises(ValueError, match="k must"):
        most_confident_mistakes(torch.full((2, 2), 0.5), labels, k=-1)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        most_confident_mistakes(torch.full((2,), 0.5), labels, k=1)
