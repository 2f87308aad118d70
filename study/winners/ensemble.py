"""`python -m study ensemble`: average the class probabilities of a study's K most accurate trials.

`run --keep-top K` keeps the inference models of the K trials with the best validation
accuracy (the seven included) beside the storage (`<study>.top/trial-N.keras`). This command
loads them, averages their probabilities on the study's test split, and, with `--holdout`,
on images the study never saw, where the ensemble is compared image by image with the single
best trial (paired bootstrap interval and McNemar's test, as `confirm` does). The result is
recorded on the study for the report. The members are the trials as run (their own seeds),
not retrained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from study.errors import StorageError, StudyError
from study.store.record import StudyKey, kept_model_name, label_of, param_value, top_trials
from study.store.storage import StorageLocation, claim_single_writer, load_study, open_storage, top_models_dir


def average_probabilities(member_probabilities: list[np.ndarray]) -> np.ndarray:
    """The ensemble's class probabilities: the mean of its members' (same images, same classes)."""
    return np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in member_probabilities]), axis=0)


def members_of(study, location: StorageLocation, top: int, artifacts: str | None = None) -> list[tuple]:
    """(trial, model path) of the `top` most accurate trials, fetched from the study's shared store
    when it has one; StudyError when one was not kept."""
    from study.store.artifacts import fetch_kept, study_store

    trials = top_trials(study.get_trials(deepcopy=False), top, include_seeds=True)
    if len(trials) < top:
        raise StudyError(f"--top {top}: study '{study.study_name}' has only {len(trials)} completed trial(s)")
    folder = top_models_dir(location, study.study_name)
    members = [(t, folder / kept_model_name(t.number)) for t in trials]
    store, url = study_store(location, study.user_attrs, artifacts, study.study_name)
    for trial, path in members:
        fetch_kept(trial, path, store, url)
    missing = [t.number for t, path in members if not path.is_file()]
    if missing:
        raise StudyError(f"--top {top}: the model of trial {missing[0]} is not kept in '{folder}' (run the study "
                         f"with --keep-top {top} or more; models are kept from then on)")
    return members


def run_ensemble(location: StorageLocation, study_name: str, top: int, holdout_dir: Path | None = None,
                 batch_size: int = 32, artifacts: str | None = None) -> dict:
    """Score the ensemble of the `top` best trials; returns (and records on the study) its numbers."""
    from study.config import SplitConfig
    from study.data.holdout import prepare_holdout
    from study.data.images import load_splits
    from study.stats.paired import compare_paired

    if top < 2:
        raise StudyError(f"--top {top}: an ensemble needs at least 2 members")
    storage = open_storage(location)
    study = load_study(location, study_name, storage)
    attrs = study.user_attrs
    if StudyKey.TRAIN not in attrs:
        raise StorageError(f"study '{study_name}' was not made by `python -m study run`")
    members = members_of(study, location, top, artifacts)
    sizes = {int(param_value(t, "image_size") or attrs[StudyKey.TRAIN]["image_size"]) for t, _ in members}
    if len(sizes) > 1:
        raise StudyError(f"--top {top}: the members take images of {sorted(sizes)} px; an ensemble here takes "
                         "one size (use a smaller --top)")
    image_size = sizes.pop()
    split = SplitConfig(**attrs.get(StudyKey.SPLIT, {}))
    data = load_splits(attrs[StudyKey.DATA_DIR], image_size, split, attrs[StudyKey.SPLIT_SEED])
    if data.fingerprint != attrs[StudyKey.DATA_FINGERPRINT]:
        raise StorageError(f"the images in '{attrs[StudyKey.DATA_DIR]}' changed since study '{study_name}' ran")
    holdout = None
    if holdout_dir is not None:
        holdout = prepare_holdout(holdout_dir, list(attrs[StudyKey.CLASS_NAMES]), image_size, data.root,
                                  location.files_dir)
        holdout_x = np.load(holdout.arrays_dir / "x.npy", mmap_mode="r")
        holdout_y = np.load(holdout.arrays_dir / "y.npy")

    import keras

    from study.trial.inference import Predictor

    test_probabilities, holdout_probabilities = [], []
    for trial, path in members:
        predictor = Predictor(keras.models.load_model(path, compile=False))
        test_probabilities.append(predictor.probabilities(data.x["test"], batch_size))
        if holdout is not None:
            holdout_probabilities.append(predictor.probabilities(holdout_x, batch_size))
        keras.backend.clear_session()
        print(f"member: trial {trial.number} ({label_of(trial)}), validation {trial.values[0]:.4f}", flush=True)

    y_test = data.y["test"]
    result = {"top": top, "members": [t.number for t, _ in members], "test_images": int(len(y_test)),
              "test_accuracy": accuracy_of(average_probabilities(test_probabilities), y_test),
              "best_test_accuracy": accuracy_of(test_probabilities[0], y_test)}
    if holdout is not None:
        ensemble_right = (average_probabilities(holdout_probabilities).argmax(axis=1) == holdout_y).astype(int)
        best_right = (holdout_probabilities[0].argmax(axis=1) == holdout_y).astype(int)
        comparison = compare_paired([ensemble_right.tolist()], [best_right.tolist()])
        result.update({"holdout_images": int(len(holdout_y)), "holdout_fingerprint": holdout.fingerprint,
                       "holdout_accuracy": float(ensemble_right.mean()),
                       "best_holdout_accuracy": float(best_right.mean()),
                       "lead": comparison.difference, "lead_low": comparison.ci_low, "lead_high": comparison.ci_high,
                       "mcnemar_p": comparison.p_value})
    claim_single_writer(location)
    study.set_user_attr(StudyKey.ENSEMBLE, result)
    return result


def accuracy_of(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)).mean())
