"""Where a model fails: confusion matrix, per-class precision/recall/F1, confused pairs, confident mistakes.

Pure functions over true labels and a model's recorded predictions (`study.store.predictions`),
no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from study.store.predictions import Predictions


@dataclass(frozen=True)
class ClassRow:
    """One class's row of the per-class table."""

    name: str
    images: int  # true images of this class
    precision: float | None  # None when the model never predicted this class
    recall: float | None  # None when the split has no image of this class
    f1: float | None
    mistaken_for: str | None  # the class its images are most often predicted as, if any error
    mistaken_count: int


@dataclass(frozen=True)
class ConfusedPair:
    true_name: str
    predicted_name: str
    count: int
    share: float  # of the true class's images


@dataclass(frozen=True)
class Mistake:
    index: int  # position in the evaluated split
    true_name: str
    predicted_name: str
    probability: float  # the model's probability for its (wrong) prediction


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as class j."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return counts


def per_class_rows(counts: np.ndarray, class_names: list[str]) -> list[ClassRow]:
    """Precision, recall, F1 and the most frequent wrong prediction of every class."""
    rows = []
    for i, name in enumerate(class_names):
        correct = int(counts[i, i])
        actual = int(counts[i].sum())
        predicted = int(counts[:, i].sum())
        precision = correct / predicted if predicted else None
        recall = correct / actual if actual else None
        # 2TP / (2TP + FP + FN): defined (0) also for a class the model never predicts.
        f1 = 2 * correct / (actual + predicted) if actual + predicted else None
        wrong = counts[i].copy()
        wrong[i] = 0
        j = int(wrong.argmax())
        rows.append(ClassRow(name, actual, precision, recall, f1,
                             class_names[j] if wrong[j] else None, int(wrong[j])))
    return rows


def confused_pairs(counts: np.ndarray, class_names: list[str], limit: int = 5) -> list[ConfusedPair]:
    """The most frequent (true -> predicted) errors, largest count first, ties by share."""
    pairs = []
    for i in range(len(class_names)):
        actual = counts[i].sum()
        for j in range(len(class_names)):
            if i != j and counts[i, j]:
                pairs.append(ConfusedPair(class_names[i], class_names[j], int(counts[i, j]),
                                          float(counts[i, j] / actual)))
    pairs.sort(key=lambda p: (-p.count, -p.share, p.true_name, p.predicted_name))
    return pairs[:limit]


def mistakes_of(predictions: Predictions) -> list[Mistake]:
    """The recorded confident mistakes, each with its names and probability."""
    names, predicted = predictions.class_names, predictions.predicted
    return [Mistake(int(i), names[int(predictions.true[i])], names[int(predicted[i])],
                    float(predictions.probabilities[i, predicted[i]])) for i in predictions.thumbnail_index]
