"""A folder's class names against a model's: which model class each folder class is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.errors import DataError


def label_map(model_classes: list[str], folder_classes: list[str], folder: Path) -> np.ndarray:
    """Index of each folder class in the model's classes; DataError for a class the model lacks."""
    unknown = [name for name in folder_classes if name not in model_classes]
    if unknown:
        raise DataError(f"class folder '{unknown[0]}' in '{folder}' is not a class of the model "
                        f"(expected some of: {', '.join(model_classes)})")
    return np.asarray([model_classes.index(name) for name in folder_classes], np.int32)
