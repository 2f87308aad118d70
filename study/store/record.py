"""The record of what a study stores: every attribute key, study-name suffix and file name, in one place.

Writers (the run, the objective, confirm, export-model, the Keras Tuner engine) and readers
(the report, confirm, export-model, the dashboard) name what they store only through this
module, so a reader of a study never imports its writer. The values are the names already in
studies on disk: changing one would orphan every study written before, so they never change.

`accuracy`, `seed_name`, `param_value` and friends are the small typed accessors that readers
share; everything that interprets the numbers lives with its reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from optuna.trial import FrozenTrial, TrialState


class StudyKey:
    """User attributes of a study (`study.user_attrs`), written once when a run creates it."""

    SPACE_NAME = "space_name"
    SPACE_FINGERPRINT = "space_fingerprint"
    SPACE_TEXT = "space_text"  # the space file as run, so later commands need not find it
    DATA_DIR = "data_dir"
    DATA_FINGERPRINT = "data_fingerprint"
    CLASS_NAMES = "class_names"
    SPLIT_COUNTS = "split_counts"
    SPLIT_SEED = "split_seed"
    SPLIT = "split"
    SKIPPED_IMAGES = "skipped_images"
    TRAIN = "train"  # the run's TrainConfig as a dict
    PACKAGE_VERSION = "package_version"
    PYTHON = "python"
    MACHINE = "machine"
    CPU_COUNT = "cpu_count"
    GPUS = "gpus"
    DEVICE = "device"
    KERAS_BACKEND = "keras_backend"  # tensorflow, jax or torch: what the run that created the study trained on
    ARTIFACTS = "artifact_store"  # run --artifacts URL (a folder or s3://BUCKET/PREFIX; never a secret)
    ISOLATION = "isolation"
    EXPLICIT_FLAGS = "explicit_flags"  # run flags given on the command line (they narrow the space)
    PACKAGES = "packages"
    OBJECTIVES = "objectives"
    COMMAND_LINES = "command_lines"  # every run command that added trials, in order
    ENGINE = "engine"  # Keras Tuner studies: "keras-tuner <tuner>"
    EXPORTS = "exports"  # export-model's measured results, by `export_key`
    ENSEMBLE = "ensemble"  # the latest `ensemble` command's measured results


class TrialKey:
    """User attributes of a trial (`trial.user_attrs`)."""

    SEED_NAME = "seed_name"  # one of the space's seed configurations (the seven): its name
    PUBLISHED_ACCURACY = "published_accuracy"
    PUBLISHED_TIME_MS = "published_time_ms"
    TRAINABLE_PARAMS = "trainable_params"
    TOTAL_PARAMS = "total_params"
    FAIL_REASON = "fail_reason"
    BEST_EPOCH = "best_epoch"
    TEST_ACCURACY = "test_accuracy"
    TRAIN_SECONDS = "train_seconds"
    PEAK_RSS_MB = "peak_rss_mb"
    WORKER_PID = "worker_pid"
    HISTORY = "history"  # per-epoch metrics: {"accuracy": [...], "val_accuracy": [...], ...}
    EPOCH_SECONDS = "epoch_seconds"
    EPOCHS_RUN = "epochs_run"
    # Where a trial's time went outside its epochs, in seconds: {"data": ..., "build": ..., ...}
    # (see study.trial.job.PhaseClock); trials made before it was recorded have none.
    PHASE_SECONDS = "phase_seconds"
    KERAS_BACKEND = "keras_backend"  # the Keras backend the trial trained on
    SAVE_ERROR = "save_error"
    MODEL_ARTIFACT_ID = "model_artifact_id"
    # Studies with a shared artifact store (run --artifacts): what a later command on any machine fetches.
    PREDICTIONS_ARTIFACT_ID = "predictions_artifact_id"  # the best model's test predictions (.npz)
    BEST_META_ARTIFACT_ID = "best_meta_artifact_id"  # the best model's metadata (.json)
    KEPT_MODEL_ARTIFACT_ID = "kept_model_artifact_id"  # a front or top-K trial's inference model
    HEAD_ONLY_VAL_ACCURACY = "head_only_val_accuracy"  # two-stage, stage 2: before the base was unfrozen
    HOLDOUT_ACCURACY = "holdout_accuracy"
    HOLDOUT_CORRECT = "holdout_correct"  # per held-out image: 1 if right
    # Confirmation runs (`<study>-confirm`)
    CONFIRM_OF = "confirm_of"  # the number of the searched trial they repeat
    CONFIRM_SEED = "confirm_seed"
    CONFIRM_EPOCHS = "confirm_epochs"
    CONFIRM_PATIENCE = "confirm_patience"
    HOLDOUT_FINGERPRINT = "holdout_fingerprint"
    # Two-stage, stage 2 (`<study>-stage2`)
    STAGE1_TRIAL = "stage1_trial"
    STAGE1_VALUE = "stage1_value"
    LEARNING_RATE_FACTOR = "learning_rate_factor"  # stage 2's fine-tuning rate = the head's x this
    # Keras Tuner's trials imported into `<study>-keras-tuner`
    KERAS_TUNER_TRIAL_ID = "keras_tuner_trial_id"
    KERAS_TUNER_PREFIX = "tuner/"  # Keras Tuner's own values (tuner/epochs, tuner/round, ...)


class CostKey:
    """What a model costs (see study.trial.cost): one trial user attribute each."""

    PARAMS_BASE = "params_base"
    PARAMS_HEAD = "params_head"
    PARAMS_TOTAL = "params_total"
    MACS = "macs"  # multiply-adds for one image
    MODEL_BYTES = "model_bytes"
    LATENCY_MS = "latency_ms"


COST_KEYS = (CostKey.PARAMS_BASE, CostKey.PARAMS_HEAD, CostKey.PARAMS_TOTAL, CostKey.MACS, CostKey.MODEL_BYTES,
             CostKey.LATENCY_MS)
COST_LABELS = {CostKey.MACS: "multiply-adds", CostKey.MODEL_BYTES: "model size", CostKey.PARAMS_TOTAL: "parameters",
               CostKey.LATENCY_MS: "latency"}
# A confirmation run's budget: runs with another budget are another comparison.
BUDGET_KEYS = (TrialKey.CONFIRM_EPOCHS, TrialKey.CONFIRM_PATIENCE, TrialKey.HOLDOUT_FINGERPRINT)
LONG_KEYS = (TrialKey.HISTORY, TrialKey.EPOCH_SECONDS, TrialKey.PHASE_SECONDS)  # lists and dicts: no table column
FIXED_PARAMS_SYSTEM_KEY = "fixed_params"  # Optuna's own system attr of an enqueued trial

# Studies that live beside a study, named after it.
CONFIRM_SUFFIX = "-confirm"
STAGE2_SUFFIX = "-stage2"
KERAS_TUNER_SUFFIX = "-keras-tuner"

# Files and folders beside the storage (`StorageLocation.files_dir`).
ARTIFACT_DIR_NAME = "artifacts"
IMAGE_CACHE_DIR_NAME = "image-cache"
FEATURE_CACHE_DIR_NAME = "feature-cache"
HOLDOUT_CACHE_DIR_NAME = "holdout-cache"
BEST_MODEL_SUFFIX = ".best.keras"
BEST_META_SUFFIX = ".best.json"
PREDICTIONS_SUFFIX = ".predictions.npz"  # after the model's name without `.keras`
FRONT_DIR_SUFFIX = ".front"
TOP_DIR_SUFFIX = ".top"  # run --keep-top K: the K most accurate trials' models, for `ensemble`


def confirm_study_name(study_name: str) -> str:
    """The study that holds the confirmation runs of `study_name`."""
    return study_name + CONFIRM_SUFFIX


def kept_model_name(trial_number: int) -> str:
    """A kept trial model's file name in the study's front folder."""
    return f"trial-{trial_number}.keras"


def predictions_path(model_path: Path) -> Path:
    """Where the predictions of a saved model (`<stem>.best.keras`) are kept."""
    return model_path.with_name(model_path.name.removesuffix(".keras") + PREDICTIONS_SUFFIX)


def learning_curve_name(trial_number: int) -> str:
    """The file name of a trial's learning-curve artifact."""
    return f"learning_curve_trial_{trial_number}.png"


def export_key(trial_number: int, fmt: str, quantize: str) -> str:
    """The key of one export in the study's `exports` attribute."""
    return f"{trial_number}/{fmt}/{quantize}"


def accuracy(trial: FrozenTrial) -> float | None:
    """A trial's validation accuracy (its first objective), or None when it has no value."""
    return trial.values[0] if trial.values else None


def is_seed(trial: FrozenTrial) -> bool:
    """Whether the trial is one of the space's seed configurations (the seven)."""
    return TrialKey.SEED_NAME in trial.user_attrs


def label_of(trial: FrozenTrial) -> str:
    """A seed configuration's name, else `trial N`."""
    return trial.user_attrs.get(TrialKey.SEED_NAME, f"trial {trial.number}")


def param_value(trial: FrozenTrial, name: str) -> Any:
    """A parameter's value, sampled or fixed (fixed ones are user attrs, or the seeds' fixed params)."""
    if name in trial.params:
        return trial.params[name]
    if name in trial.user_attrs:
        return trial.user_attrs[name]
    return trial.system_attrs.get(FIXED_PARAMS_SYSTEM_KEY, {}).get(name)


def best_by_accuracy(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The completed trial with the highest validation accuracy (the earliest on ties)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    return min(done, key=lambda t: (-accuracy(t), t.number)) if done else None


def top_trials(trials: Sequence[FrozenTrial], k: int, include_seeds: bool = False) -> list[FrozenTrial]:
    """The k completed trials with the highest validation accuracy, best first."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and (include_seeds or not is_seed(t))]
    return sorted(done, key=lambda t: (-accuracy(t), t.number))[:k]
