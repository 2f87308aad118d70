"""The objective and the study around it: pruning, the seven, failures, recorded attrs, best model."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from study.config import AugmentConfig, RunConfig, SplitConfig, TrainConfig
from study.data.images import load_splits
from study.search.objective import Objective
from study.search.runner import enqueue_seeds, start_runtime
from study.space.spec import load_space, parse_space
from study.store.record import TrialKey
from study.store.storage import resolve_storage
from study.trial import model as model_module
from tests.conftest import SMALL_SPACE

SPACE = parse_space(SMALL_SPACE + """
[[seeds]]
name = "published"
head_depth = 1
dense_units = 8
learning_rate = 1e-3
""", "tiny.toml")


@pytest.fixture
def make_objective(image_folder, tmp_path):
    split = SplitConfig(0.3, 0.3)
    data = load_splits(image_folder, 32, split, seed=0)
    location = resolve_storage(f"sqlite:///{tmp_path}/study.db")
    runtimes = []

    def make(epochs=2):
        train = TrainConfig(epochs=epochs, batch_size=8, image_size=32, alpha=0.25, weights="none",
                            augment=AugmentConfig(enabled=False))
        setup, runtime, _, _ = start_runtime(data, split, train, location, RunConfig(data.root, isolation="none"))
        runtimes.append(runtime)
        return Objective(SPACE, setup, runtime, tmp_path / "best.keras", tmp_path / "best.json")

    yield make
    for runtime in runtimes:
        runtime.close()


def study_with_a_perfect_trial(epochs: int) -> optuna.Study:
    """A study whose one finished trial reached accuracy 1.0 at every epoch: the rest look hopeless."""
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(
        value=1.0, intermediate_values={step: 1.0 for step in range(1, epochs + 1)}))
    return study


def test_a_hopeless_trial_is_pruned_and_keeps_its_epochs(make_objective):
    study = study_with_a_perfect_trial(epochs=3)
    study.optimize(make_objective(epochs=3), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["epochs_run"] == 1
    assert len(trial.user_attrs["history"]["val_accuracy"]) == 1
    assert list(trial.intermediate_values) == [1]


def test_the_seeds_are_never_pruned(make_objective):
    study = study_with_a_perfect_trial(epochs=3)
    enqueue_seeds(study, SPACE)
    study.optimize(make_objective(epochs=3), n_trials=1)
    trial = study.trials[-1]
    assert trial.user_attrs[TrialKey.SEED_NAME] == "published"
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs_run"] == 3


def test_a_complete_trial_records_its_attrs_and_returns_the_best_epoch(make_objective, tmp_path):
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(epochs=2), n_trials=1)
    trial = study.trials[0]
    attrs = trial.user_attrs
    assert trial.state == TrialState.COMPLETE
    assert trial.value == max(attrs["history"]["val_accuracy"])
    assert set(attrs["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in attrs["history"].values())
    assert attrs["epochs_run"] == 2 and attrs["best_epoch"] in (1, 2)
    assert 0.0 <= attrs["test_accuracy"] <= 1.0
    assert 0 < attrs["trainable_params"] < attrs["total_params"]
    assert attrs["train_seconds"] > 0 and attrs["dropout"] == 0.5
    meta = json.loads((tmp_path / "best.json").read_text())
    assert (tmp_path / "best.keras").is_file()
    assert meta["class_names"] == ["apple", "banana", "cherry"] and meta["trial_number"] == 0


def test_only_a_better_trial_replaces_the_best_model(make_objective, tmp_path):
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.01))  # unbeatable
    study.optimize(make_objective(epochs=1), n_trials=1)
    assert not (tmp_path / "best.keras").exists()


def test_a_failing_trial_is_recorded_and_the_study_goes_on(make_objective, monkeypatch):
    real_build = model_module.build_model
    calls = []

    def build_or_run_out_of_memory(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise MemoryError("OOM when allocating tensor with shape [16384,4096]")
        return real_build(**kwargs)

    monkeypatch.setattr(model_module, "build_model", build_or_run_out_of_memory)
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(epochs=1), n_trials=2, catch=(Exception,))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["fail_reason"] == "MemoryError: OOM when allocating tensor with shape [16384,4096]"


def test_the_seven_are_enqueued_once_however_often_the_run_starts():
    space = load_space("default")
    study = optuna.create_study(direction="maximize")
    enqueue_seeds(study, space)
    trial = study.ask()  # the first seed starts running ...
    study.tell(trial, 0.5)  # ... and finishes
    enqueue_seeds(study, space)
    enqueue_seeds(study, space)
    names = [t.user_attrs[TrialKey.SEED_NAME] for t in study.trials]
    assert sorted(names) == [f"mn_resultset{i}" for i in range(1, 8)]
    assert study.trials[0].user_attrs["published_accuracy"] == 0.9488
