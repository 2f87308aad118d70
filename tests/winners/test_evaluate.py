"""Evaluation arithmetic and class matching (the model-loading path is covered by test_cli)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from study.data.labels import label_map
from study.errors import DataError
from study.winners.evaluate import accuracy_by_class


def test_accuracy_overall_and_per_class():
    true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    result = accuracy_by_class(true, predicted, ["a", "b", "c", "d"])
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.n_images == 6
    assert result.per_class == {"a": {"accuracy": pytest.approx(2 / 3), "n_images": 3},
                                "b": {"accuracy": 0.5, "n_images": 2},
                                "c": {"accuracy": 1.0, "n_images": 1}}
    assert set(json.loads(result.to_json())) == {"accuracy", "n_images", "per_class"}


def test_folder_classes_map_to_the_model_order():
    assert label_map(["a", "b", "c"], ["b", "c"], Path("x")).tolist() == [1, 2]


def test_a_class_the_model_does_not_know_is_an_error():
    with pytest.raises(DataError, match="class folder 'durian' in 'x' is not a class of the model"):
        label_map(["apple", "banana"], ["apple", "durian"], Path("x"))


def test_a_mistake_is_reported_before_keras_is_imported(tmp_path):
    """A missing study is a one-line error that never starts the backend (about a second, not five)."""
    from tests.commands import study_main_reporting_import
    from tests.conftest import write_class_images

    write_class_images(tmp_path / "images", {"a": 2, "b": 2})
    result = study_main_reporting_import("keras", "evaluate", "--data", "images", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "no study 'images' in" in result.stderr
    assert "keras imported: False" in result.stdout
