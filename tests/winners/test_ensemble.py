"""`run --patience --keep-top` and `ensemble`: early-stopped trials, kept models, averaged probabilities."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from study.errors import StorageError
from study.search.runner import study_patience
from study.store.record import StudyKey, TrialKey
from study.winners.ensemble import average_probabilities
from tests.commands import study_cli
from tests.conftest import write_class_images

SMALL_RUN = ["--space", "seed", "--weights", "none", "--alpha", "0.25", "--image-size", "32", "--batch-size", "8",
             "--no-augment"]


def test_the_ensemble_s_probabilities_are_the_mean_of_its_members():
    members = [np.array([[0.6, 0.4], [0.2, 0.8]]), np.array([[0.2, 0.8], [0.4, 0.6]]),
               np.array([[0.7, 0.3], [0.3, 0.7]])]
    mean = average_probabilities(members)
    assert mean == pytest.approx(np.array([[0.5, 0.5], [0.3, 0.7]]))
    assert mean.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_a_resume_keeps_the_study_s_patience_and_refuses_another():
    study = optuna.create_study()
    assert study_patience(study, 3) == 3  # a new study records the one given
    study.set_user_attr(StudyKey.TRAIN, {"epochs": 12, "patience": 3})
    assert study_patience(study, None) == 3
    assert study_patience(study, 3) == 3
    with pytest.raises(StorageError, match="was run with --patience 3, not --patience 5"):
        study_patience(study, 5)
    study.set_user_attr(StudyKey.TRAIN, {"epochs": 12})
    with pytest.raises(StorageError, match="was run with no --patience, not --patience 2"):
        study_patience(study, 2)


@pytest.mark.slow
def test_early_stopped_trials_keep_the_top_models_and_their_ensemble_is_their_mean(tmp_path):
    import keras

    images = write_class_images(tmp_path / "images", {"a": 8, "b": 8, "c": 8})
    held = write_class_images(tmp_path / "held", {"a": 3, "b": 3, "c": 3}, seed=5)
    run = study_cli("run", "--data", str(images), "--study-name", "s", "--n-trials", "3", "--epochs", "4",
                    "--patience", "1", "--keep-top", "2", *SMALL_RUN, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs[StudyKey.TRAIN]["patience"] == 1
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in done:  # patience 1: stop one epoch after the best, or at the budget
        assert trial.user_attrs[TrialKey.EPOCHS_RUN] == min(4, trial.user_attrs[TrialKey.BEST_EPOCH] + 1)
    top = sorted(done, key=lambda t: (-t.value, t.number))[:2]
    kept = sorted(p.name for p in (tmp_path / "s.top").iterdir())
    assert kept == sorted(f"trial-{t.number}.keras" for t in top)

    again = study_cli("run", "--data", str(images), "--study-name", "s", "--n-trials", "3", "--epochs", "4",
                      "--patience", "2", *SMALL_RUN, cwd=tmp_path)
    assert again.returncode == 2 and "was run with --patience 1, not --patience 2" in again.stderr

    ensemble = study_cli("ensemble", "--study-name", "s", "--top", "2", "--holdout", str(held), cwd=tmp_path)
    assert ensemble.returncode == 0, ensemble.stderr
    recorded = optuna.load_study(study_name="s", storage=storage).user_attrs[StudyKey.ENSEMBLE]
    assert recorded["members"] == [t.number for t in top]
    # The recorded held-out accuracy is that of the members' mean probabilities, computed here again.
    x = np.load(next((tmp_path / "holdout-cache").iterdir()) / "x.npy").astype(np.float32)
    y = np.load(next((tmp_path / "holdout-cache").iterdir()) / "y.npy")
    members = [keras.models.load_model(tmp_path / "s.top" / f"trial-{t.number}.keras", compile=False).predict(
        x, verbose=0) for t in top]
    assert recorded["holdout_accuracy"] == pytest.approx(float((np.mean(members, axis=0).argmax(1) == y).mean()))
    assert recorded["best_holdout_accuracy"] == pytest.approx(float((members[0].argmax(1) == y).mean()))
    report = study_cli("report", "--study-name", "s", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "reports" / "s" / "README.md").read_text(encoding="utf-8")
    assert "**Ensemble of the 2 most accurate trials**" in text and "Best / run epochs" in text
    missing = study_cli("ensemble", "--study-name", "s", "--top", "3", cwd=tmp_path)
    assert missing.returncode == 2 and "is not kept" in missing.stderr
