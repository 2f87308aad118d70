"""`python -m study evaluate`: the study's best model on another image folder, overall and per class."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.data.images import decode_folder
from study.data.labels import label_map
from study.errors import DataError, StorageError
from study.store.storage import StorageLocation, best_model_paths, load_study


@dataclass
class Evaluation:
    """Accuracy of the best model on a folder: overall, and per class present in the folder."""

    accuracy: float
    n_images: int
    per_class: dict[str, dict[str, float]]  # class -> {"accuracy": ..., "n_images": ...}

    def to_json(self) -> str:
        return json.dumps({"accuracy": self.accuracy, "n_images": self.n_images,
                           "per_class": self.per_class}, ensure_ascii=False)


def load_best_metadata(location: StorageLocation, study_name: str, artifacts: str | None = None) -> tuple[Path, dict]:
    """The best model's path and metadata (fetched from the study's shared store when it has
    one); StorageError when the study has none."""
    import optuna

    from study.store.artifacts import fetch_best, study_store

    study = load_study(location, study_name)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise StorageError(f"study '{study_name}' has no completed trial yet: run it first")
    fetch_best(location, study_name, study.get_trials(deepcopy=False),
               *study_store(location, study.user_attrs, artifacts, study_name))
    model_path, meta_path = best_model_paths(location, study_name)
    if not model_path.is_file() or not meta_path.is_file():
        raise StorageError(f"best model of study '{study_name}' not found at '{model_path}'")
    return model_path, json.loads(meta_path.read_text(encoding="utf-8"))


def accuracy_by_class(true: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> Evaluation:
    """Overall and per-class accuracy of `predicted` against `true` (model class indices)."""
    per_class = {}
    for index, name in enumerate(class_names):
        mask = true == index
        if mask.any():
            per_class[name] = {"accuracy": float((predicted[mask] == index).mean()),
                               "n_images": int(mask.sum())}
    return Evaluation(float((predicted == true).mean()), int(len(true)), per_class)


def evaluate_folder(location: StorageLocation, study_name: str, data_dir: Path, batch_size: int = 32,
                    report_dir: Path | None = None, artifacts: str | None = None) -> Evaluation:
    """Run the study's best model over every readable image of `data_dir`; with `report_dir`,
    also write "Where the best model fails" for these images to `report_dir/README.md`.

    Everything a user can get wrong is checked before Keras (and its backend) is imported, so a
    mistake is a one-line error in about a second instead of after the backend's start-up."""
    model_path, meta = load_best_metadata(location, study_name, artifacts)
    if report_dir is not None:
        check_report_dir(report_dir)
    decoded = decode_folder(data_dir, meta["image_size"])
    if len(decoded.labels) == 0:
        raise DataError(f"data folder '{data_dir}' has no readable images")
    true = label_map(meta["class_names"], decoded.class_names, data_dir)[decoded.labels]
    import keras

    from study.store.predictions import make_predictions
    from study.trial.inference import Predictor

    model = keras.models.load_model(model_path)
    probabilities = Predictor(model).probabilities(decoded.images, batch_size)
    if report_dir is not None:
        predictions = make_predictions(meta["class_names"], true, probabilities, decoded.images)
        write_failure_report(predictions, report_dir, study_name, data_dir, meta)
    return accuracy_by_class(true, probabilities.argmax(axis=1), meta["class_names"])


def check_report_dir(report_dir: Path) -> None:
    """DataError unless `report_dir` is (or can become) a writable folder; checked before predicting."""
    if report_dir.exists() and not report_dir.is_dir():
        raise DataError(f"--report '{report_dir}' is a file (expected a folder to write README.md into)")
    existing = next((p for p in [report_dir, *report_dir.parents] if p.exists()), Path("."))
    if not os.access(existing, os.W_OK):
        raise DataError(f"--report '{report_dir}': folder '{existing}' is not writable")


def write_failure_report(predictions, report_dir: Path, study_name: str, data_dir: Path, meta: dict) -> Path:
    """`report_dir/README.md` with the failure section for these predictions, and its figures."""
    from study.markdown_text import md
    from study.report.failure_section import failure_section
    from study.report.page import relative_paths

    figures = report_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    where = (f"`{data_dir}` ({len(predictions.true)} images), with the best model of study {md(study_name)} "
             f"(trial {meta.get('trial_number', '?')})")
    lines = [f"# Study {md(study_name)} on {md(data_dir.name)}", "",
             *failure_section(predictions, figures, report_dir, where)]
    readme = report_dir / "README.md"
    readme.write_text(relative_paths("\n".join(lines)) + "\n", encoding="utf-8")
    return readme
