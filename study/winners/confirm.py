"""`python -m study confirm`: retrain the best configurations with several seeds before believing them.

The best K searched trials and the best of the seven are each trained S more times, with
the study's data, split and settings but new training seeds, as trials of a second study
`<name>-confirm` in the same storage (their user attr `confirm_of` names the search trial).
Re-running adds only the runs that are missing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study import interrupts
from study.config import RunConfig, SplitConfig, TrainConfig, train_config_from_record
from study.data.holdout import prepare_holdout
from study.data.images import load_splits
from study.errors import StorageError, StudyError
from study.report.analysis import best_of_seven, budget_key, seven_rows
from study.search.objective import Objective
from study.search.progress import LiveTrialLine, format_trial_line
from study.search.runner import check_weights_file, fail_abandoned_trials, space_shapes, start_runtime
from study.space.spec import space_of_study
from study.store.artifacts import artifact_store, open_checked, settle_store_url
from study.store.record import BUDGET_KEYS, StudyKey, TrialKey, confirm_study_name, top_trials
from study.store.storage import StorageLocation, best_model_paths, claim_single_writer, load_study, open_storage

CONFIRM_SEED_OFFSET = 10_000  # keeps confirmation seeds apart from the search's trial seeds


def configs_to_confirm(trials, top: int) -> list[optuna.trial.FrozenTrial]:
    """The best `top` searched trials, then the best of the seven (if it ran)."""
    chosen = top_trials(trials, top)
    best_seed = best_of_seven(seven_rows(trials))
    if best_seed is not None:
        chosen.append(next(t for t in trials if t.number == best_seed.trial_number))
    return chosen


def train_config_from(attrs: dict) -> TrainConfig:
    """The study's recorded training settings, with a fresh seed range for confirmation."""
    train = train_config_from_record(attrs[StudyKey.TRAIN])
    return replace(train, seed=train.seed + CONFIRM_SEED_OFFSET)


def run_confirm(location: StorageLocation, study_name: str, top: int = 3, seeds: int = 3,
                epochs: int | None = None, patience: int | None = None, holdout_dir: Path | None = None,
                artifacts: str | None = None) -> int:
    """Retrain the chosen configurations `seeds` times each; returns the exit code.

    `epochs` replaces the study's epoch budget, `patience` stops a run once that many epochs
    brought no better validation accuracy (the best epoch is restored), and `holdout_dir`
    scores every retrained model on a folder of images the study never saw.
    """
    claim_single_writer(location)
    storage = open_storage(location)
    search = load_study(location, study_name, storage)
    attrs = search.user_attrs
    if StudyKey.TRAIN not in attrs:
        raise StorageError(f"study '{study_name}' was not made by `python -m study run`")
    trials = search.get_trials(deepcopy=False)
    chosen = configs_to_confirm(trials, top)
    if not chosen:
        raise StorageError(f"study '{study_name}' has no completed trial to confirm")

    space = space_of_study(attrs)
    train = train_config_from(attrs)
    if epochs is not None:
        train = replace(train, epochs=epochs)
    if patience is None:  # the study's own early stopping, if it ran with one
        patience = train.patience
    if patience is not None and patience >= train.epochs:
        raise StudyError(f"--patience {patience} must be below the epoch budget ({train.epochs}), "
                         "or no run could stop early")
    check_weights_file(train.weights)
    store_url = settle_store_url(attrs, artifacts, study_name, location)
    store = open_checked(store_url) if store_url else None  # checked before any run is enqueued
    split = SplitConfig(**attrs.get(StudyKey.SPLIT, {}))
    data = load_splits(attrs[StudyKey.DATA_DIR], train.image_size, split, attrs[StudyKey.SPLIT_SEED])
    if data.fingerprint != attrs[StudyKey.DATA_FINGERPRINT]:
        raise StorageError(f"the images in '{attrs[StudyKey.DATA_DIR]}' changed since study '{study_name}' ran")

    holdout = None
    shapes = space_shapes(space, train)
    if holdout_dir is not None and len({size for _, size in shapes}) > 1:
        raise StudyError(f"--holdout: study '{study_name}' searches the image size; held-out images are "
                         "decoded at one size, so confirm it without --holdout")
    if holdout_dir is not None:
        holdout = prepare_holdout(holdout_dir, list(attrs[StudyKey.CLASS_NAMES]), train.image_size, data.root,
                                  location.files_dir)
        print(f"holdout: {holdout_dir} - {holdout.n_images} images of {len(holdout.class_counts)} classes, "
              "scored by every retrained model", flush=True)
    budget = {TrialKey.CONFIRM_EPOCHS: train.epochs, TrialKey.CONFIRM_PATIENCE: patience,
              TrialKey.HOLDOUT_FINGERPRINT: holdout.fingerprint if holdout else None}
    job_options = {"patience": patience, "holdout_dir": str(holdout.arrays_dir) if holdout else None}

    setup, runtime, _, data = start_runtime(data, split, train, location, RunConfig(data_dir=data.root),
                                            shapes=shapes)
    try:
        return confirm_runs(location, storage, study_name, chosen, seeds, space, setup, runtime, budget,
                            job_options, store=store, shared=store is not None)
    finally:
        runtime.close()


def confirm_runs(location, storage, study_name: str, chosen, seeds: int, space, setup, runtime,
                 budget: dict | None = None, job_options: dict | None = None, store=None, shared: bool = False) -> int:
    """Enqueue the missing (configuration, seed) runs of this budget and train them in the runtime.

    `store`: where the runs' artifacts go (default: the folder beside the storage); `shared`:
    it is the study's shared store, so the best run's model goes there as well."""
    budget = budget or {TrialKey.CONFIRM_EPOCHS: setup.train.epochs, TrialKey.CONFIRM_PATIENCE: None,
                        TrialKey.HOLDOUT_FINGERPRINT: None}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed runs are shown with their reason
    name = confirm_study_name(study_name)
    confirm = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                  load_if_exists=True, pruner=optuna.pruners.NopPruner())
    confirm.set_metric_names(["validation accuracy"])
    if location.scheme == "sqlite":  # under this run's single-writer lock: no one runs these
        fail_abandoned_trials(confirm, storage)
    key = tuple(budget[name] for name in BUDGET_KEYS)
    for waiting in confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if budget_key(waiting.user_attrs, setup.train.epochs) != key:  # queued by a confirm with another budget
            storage.set_trial_user_attr(waiting._trial_id, TrialKey.FAIL_REASON,
                                        "superseded: confirm ran with another budget")
            storage.set_trial_state_values(waiting._trial_id, TrialState.FAIL)
    done = {(t.user_attrs.get(TrialKey.CONFIRM_OF), t.user_attrs.get(TrialKey.CONFIRM_SEED))
            for t in confirm.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL and budget_key(t.user_attrs, setup.train.epochs) == key}
    for trial in chosen:
        for seed in range(seeds):
            if (trial.number, seed) in done:
                continue
            user_attrs = {TrialKey.CONFIRM_OF: trial.number, TrialKey.CONFIRM_SEED: seed,
                          **{name: value for name, value in budget.items() if value is not None}}
            if TrialKey.SEED_NAME in trial.user_attrs:
                user_attrs[TrialKey.SEED_NAME] = trial.user_attrs[TrialKey.SEED_NAME]
            confirm.enqueue_trial(dict(trial.params), user_attrs=user_attrs)
    # Runs enqueued by an earlier, interrupted confirm are still waiting: run them too.
    missing = len(confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    print(f"confirm: {len(chosen)} configurations x {seeds} seeds into study '{name}'; "
          f"{missing} run(s) to do", flush=True)
    if missing:
        model_path, meta_path = best_model_paths(location, name)
        objective = Objective(space, setup, runtime, model_path, meta_path,
                              artifact_store=store if store is not None else artifact_store(location),
                              shared_store=shared, live_line=LiveTrialLine(), job_options=job_options)
        with interrupts.deferred():
            confirm.optimize(objective, n_trials=missing, catch=(Exception,), gc_after_trial=True,
                             callbacks=[lambda s, t: print(format_trial_line(s, t), flush=True),
                                        lambda s, t: interrupts.raise_if_requested()])
    return 0
