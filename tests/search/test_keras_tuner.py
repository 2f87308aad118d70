"""Keras Tuner on the same space: its trials imported into the storage with matching params and values."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from study.search.keras_tuner_engine import sample_keras_tuner
from study.space.spec import load_space
from tests.commands import TINY_RUN, study_cli
from tests.conftest import write_class_images


def test_the_space_maps_onto_keras_tuner_hyperparameters():
    import keras_tuner as kt

    hp = kt.HyperParameters()
    params = sample_keras_tuner(hp, load_space("default"))
    assert set(hp.values) == {"head_depth", "dense_units", "learning_rate", "dropout"}
    dense = hp._hps["dense_units"][0]
    assert (dense.min_value, dense.max_value, dense.sampling) == (64, 4096, "log")
    assert params["head_depth"] == hp.values["head_depth"]
    seed_hp = kt.HyperParameters()
    assert sample_keras_tuner(seed_hp, load_space("seed"))["dropout"] == 0.5  # fixed stays out of hp
    assert "dropout" not in seed_hp.values


@pytest.mark.slow
def test_keras_tuner_trials_are_imported_with_their_params_and_values(tmp_path):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    args = ["run", "--engine", "keras-tuner", "--kt-tuner", "random", "--data", "images", "--space", "default",
            "--n-trials", "2", *[a for a in TINY_RUN if a not in ("--space", "seed")]]
    result = study_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-1500:]
    trials = optuna.load_study(study_name="images-keras-tuner", storage=f"sqlite:///{tmp_path}/study.db").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    for trial in trials:
        saved = json.loads((tmp_path / "keras-tuner" / "images" / f"trial_{trial.user_attrs['keras_tuner_trial_id']}"
                            / "trial.json").read_text())
        expected = {k: v for k, v in saved["hyperparameters"]["values"].items() if not k.startswith("tuner/")}
        assert trial.params == pytest.approx(expected)
        assert trial.value == pytest.approx(saved["score"])
        assert trial.datetime_complete > trial.datetime_start
