"""Where a model fails: confusion matrix, per-class precision/recall/F1, confused pairs, confident mistakes.

Pure functions over true labels and predicted probabilities (no TensorFlow), and the
on-disk record of one model's predictions on a test split (`<study>.best.predictions.npz`,
written beside the best model), which the report reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_MISTAKE_THUMBNAILS = 16
THUMBNAIL_PX = 128


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


@dataclass
class Predictions:
    """A model's class probabilities on one split, with thumbnails of its most confident mistakes."""

    class_names: list[str]
    true: np.ndarray  # (n,) int
    probabilities: np.ndarray  # (n, classes) float
    thumbnails: np.ndarray  # (k, px, px, 3) uint8, the k most confident mistakes, in that order
    thumbnail_index: np.ndarray  # (k,) positions in the split

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


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


def confident_mistakes(true: np.ndarray, probabilities: np.ndarray, limit: int = MAX_MISTAKE_THUMBNAILS) -> np.ndarray:
    """Positions of wrongly predicted images, most confident (highest predicted probability) first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != true)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:limit]


def mistakes_of(predictions: Predictions) -> list[Mistake]:
    """The recorded confident mistakes, each with its names and probability."""
    names, predicted = predictions.class_names, predictions.predicted
    return [Mistake(int(i), names[int(predictions.true[i])], names[int(predicted[i])],
                    float(predictions.probabilities[i, predicted[i]])) for i in predictions.thumbnail_index]


def make_predictions(class_names: list[str], true: np.ndarray, probabilities: np.ndarray,
                     images: np.ndarray) -> Predictions:
    """A `Predictions` record, keeping thumbnails (at most THUMBNAIL_PX) of the confident mistakes only."""
    true = np.asarray(true, dtype=np.int32)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    index = confident_mistakes(true, probabilities)
    thumbnails = np.stack([thumbnail(images[i]) for i in index]) if len(index) else \
        np.zeros((0, 1, 1, 3), np.uint8)
    return Predictions(list(class_names), true, probabilities, thumbnails, index.astype(np.int32))


def thumbnail(image: np.ndarray, px: int = THUMBNAIL_PX) -> np.ndarray:
    """`image` (uint8 RGB) shrunk to at most px x px."""
    image = np.asarray(image, dtype=np.uint8)
    if max(image.shape[:2]) <= px:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((px, px), Image.BILINEAR), dtype=np.uint8)


def predictions_path(model_path: Path) -> Path:
    """Where the predictions of the best model `<stem>.best.keras` are kept."""
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".predictions.npz")


def save_predictions(predictions: Predictions, path: Path) -> None:
    # np.savez appends .npz to a name without it; the temporary name keeps it for os.replace.
    np.savez_compressed(path, class_names=np.asarray(predictions.class_names, dtype=str), true=predictions.true,
                        probabilities=predictions.probabilities, thumbnails=predictions.thumbnails,
                        thumbnail_index=predictions.thumbnail_index)


def load_predictions(path: Path) -> Predictions | None:
    """The saved predictions, or None when there are none (a model saved by an older version)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return Predictions([str(name) for name in data["class_names"]], data["true"], data["probabilities"],
                           data["thumbnails"], data["thumbnail_index"])
