"""One model's predictions on a split, kept on disk beside it (`<model>.predictions.npz`).

Written beside the best model by the trial that trained it, and by `evaluate` for another
folder; read by the report's "Where the best model fails". Only the most confident mistakes
keep a thumbnail, so the file stays small. No TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_MISTAKE_THUMBNAILS = 16
THUMBNAIL_PX = 128


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


def confident_mistakes(true: np.ndarray, probabilities: np.ndarray, limit: int = MAX_MISTAKE_THUMBNAILS) -> np.ndarray:
    """Positions of wrongly predicted images, most confident (highest predicted probability) first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != true)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:limit]


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
