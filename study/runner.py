"""`python -m study run`: check the inputs, open or resume the study, enqueue the seeds, optimize.

Everything that can be checked before the first trial is checked here (space file, storage
URL, data folder, weights), so bad input fails in seconds with one line and the storage is
not touched. The study's total trial count is `n_trials`: re-running the same command
resumes it and stops once that many trials have completed or been pruned.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict

import optuna
from optuna.trial import TrialState

from study import __version__
from study.artifacts import artifact_store
from study.config import RunConfig
from study.data import load_splits
from study.errors import StorageError, StudyError
from study.model import check_weights
from study.objective import SEED_ATTR, Objective
from study.progress import format_trial_line
from study.search_space import SearchSpace, load_space, seed_trial_params
from study.storage import (best_model_paths, check_writable, claim_single_writer, exclusive_section,
                           open_storage, resolve_storage)

SAMPLERS = ("tpe", "qmc", "random")
PRUNERS = ("median", "hyperband", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
METRIC_NAME = "validation accuracy"


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler named on the command line, seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner named on the command line, sized to the epoch budget."""
    if name == "median":
        # Judge a trial only after a third of its epochs and once five trials set the median.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 3))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def check_precision(precision: str) -> None:
    """Mixed precision pays off only on a GPU; refuse it elsewhere rather than run slower."""
    if precision == "mixed" and not gpu_names():
        raise StudyError("--precision mixed needs a GPU, and TensorFlow sees none on this machine")


def study_attrs(config: RunConfig, space: SearchSpace, data) -> dict:
    """What the study remembers about how it was set up (for resumes and the report)."""
    train = asdict(config.train)
    return {
        "space_name": space.name,
        "space_fingerprint": space.fingerprint(),
        "space_text": space.text,
        "data_dir": str(data.root),
        "data_fingerprint": data.fingerprint,
        "class_names": data.class_names,
        "split_counts": data.counts(),
        "split_seed": data.seed,
        "split": asdict(config.split),
        "skipped_images": len(data.skipped),
        "train": train,
        "package_version": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor()}".strip(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "packages": package_versions(),
    }


def gpu_names() -> list[str]:
    """The GPUs TensorFlow sees (empty on a CPU-only machine)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a study's numbers depend on."""
    from importlib import metadata

    versions = {}
    for name in ("tensorflow", "keras", "optuna", "numpy", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_resumable(study: optuna.Study, space: SearchSpace, data, train) -> None:
    """Refuse to add trials to an existing study made with another space or data set."""
    attrs = study.user_attrs
    if "space_fingerprint" in attrs and attrs["space_fingerprint"] != space.fingerprint():
        raise StorageError(
            f"study '{study.study_name}' exists with search space '{attrs.get('space_name')}' "
            f"that differs from '{space.path}'; use another --study-name"
        )
    old = attrs.get("train", {})
    new = asdict(train)
    for key in ("mode", "alpha", "image_size", "weights"):
        if key in old and old[key] != new[key]:
            raise StorageError(f"study '{study.study_name}' was run with {key} {old[key]!r}, not {new[key]!r}; "
                               "use another --study-name")
    if "data_fingerprint" in attrs and attrs["data_fingerprint"] != data.fingerprint:
        raise StorageError(
            f"study '{study.study_name}' was made on other data ('{attrs.get('data_dir')}'); "
            "use another --study-name"
        )


def enqueue_seeds(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue each seed configuration that has no trial yet; returns how many were queued.

    A seed counts as present while any of its trials waits, runs or has finished; a seed
    whose trials all failed (an interrupted run, say) is queued again, so a resumed study
    still runs all of them. Call it inside `exclusive_section` when workers share a storage.
    """
    present = {t.user_attrs.get(SEED_ATTR) for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.FAIL}
    queued = 0
    for seed in space.seeds:
        if seed.name in present:
            continue
        attrs = {SEED_ATTR: seed.name}
        if seed.published_accuracy is not None:
            attrs["published_accuracy"] = seed.published_accuracy
        if seed.published_time_ms is not None:
            attrs["published_time_ms"] = seed.published_time_ms
        study.enqueue_trial(seed_trial_params(space, seed), user_attrs=attrs)
        queued += 1
    return queued


class StopAtTotal:
    """Stop this worker once the study's finished plus running trials reach the total.

    Counting the trials other workers are running keeps several workers from overshooting
    `--n-trials`, the study's total, by more than the trials that start at the same moment.
    """

    def __init__(self, total: int):
        self.total = total

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,))) >= self.total:
            study.stop()


def run_study(config: RunConfig) -> int:
    """Run (or resume) the study described by `config`; returns the process exit code."""
    train = config.train
    space = load_space(config.space)
    location = resolve_storage(config.storage)
    check_writable(location.files_dir)
    study_name = config.study_name or config.data_dir.resolve().name
    check_precision(train.precision)
    resolved_weights = check_weights(train.weights, train.alpha, train.image_size)

    started = time.perf_counter()
    data = load_splits(config.data_dir, train.image_size, config.split, train.seed)
    counts = data.counts()
    print(f"data: {data.root} - {len(data.class_names)} classes, train {counts['train']} / "
          f"val {counts['val']} / test {counts['test']} images"
          + (f", {len(data.skipped)} unreadable skipped" if data.skipped else "")
          + f" (decoded in {time.perf_counter() - started:.1f} s)", flush=True)

    features = None
    if train.mode in ("cached", "two-stage"):
        features = load_features(data, train, resolved_weights, location)

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
    claim_single_writer(location)
    storage = open_storage(location, heartbeat_seconds=config.heartbeat_seconds)
    print(f"storage: {location.display}  study: {study_name}", flush=True)
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction="maximize", load_if_exists=True,
        sampler=make_sampler(config.sampler, train.seed), pruner=make_pruner(config.pruner, train.epochs),
    )
    check_resumable(study, space, data, train)
    if not study.user_attrs:
        for key, value in study_attrs(config, space, data).items():
            study.set_user_attr(key, value)
        study.set_metric_names([METRIC_NAME])
    commands = list(study.user_attrs.get("command_lines", []))
    study.set_user_attr("command_lines", commands + [config.command_line])
    with exclusive_section(location, storage, f"enqueue-seeds:{study_name}"):
        enqueue_seeds(study, space)

    if config.heartbeat_seconds and location.scheme != "journal":
        # Fail (and queue once more) the trials of dead workers now, so they are not counted as running.
        optuna.storages.fail_stale_trials(study)
    total = config.n_trials or space.n_trials
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    remaining = total - finished - running
    if remaining <= 0:
        print(f"study '{study_name}' already has {finished} finished trials (target {total}); "
              "raise --n-trials to add more")
    else:
        print(f"running {remaining} trial(s) of {total} ({finished} finished before), "
              f"{train.epochs} epochs each, mode {train.mode}", flush=True)
        model_path, meta_path = best_model_paths(location, study_name)
        objective = Objective(space, data, train, resolved_weights, model_path, meta_path, config.verbose,
                              artifact_store=artifact_store(location), features=features)
        study.optimize(
            objective, n_trials=remaining, timeout=config.timeout, catch=(Exception,), gc_after_trial=True,
            callbacks=[
                StopAtTotal(total),
                lambda s, t: print(format_trial_line(s, t), flush=True),
            ],
        )
    print_summary(study, location, study_name)
    if train.mode == "two-stage":
        from study.two_stage import STAGE2_SUFFIX, run_stage_two

        model_path, meta_path = best_model_paths(location, study_name + STAGE2_SUFFIX)
        arguments = dict(space=space, data=data, train=train, resolved_weights=resolved_weights,
                         model_path=model_path, meta_path=meta_path, verbose=config.verbose,
                         artifact_store=artifact_store(location), features=features)
        stage2 = run_stage_two(study, storage, arguments, config.stage2_top, config.unfreeze_blocks,
                               config.stage2_lr_factor)
        print_summary(stage2, location, stage2.study_name)
    return 0


def load_features(data, train, resolved_weights, location):
    """The frozen base's outputs for every split, from the feature cache beside the storage."""
    import keras

    from study.features import CACHE_DIR_NAME, cached_features, weights_identity
    from study.model import build_base

    started = time.perf_counter()
    base = build_base(train.image_size, train.alpha, resolved_weights)
    features = cached_features(data, base, location.files_dir / CACHE_DIR_NAME,
                               weights_identity(resolved_weights, train.seed), alpha=train.alpha,
                               image_size=train.image_size, augment_copies=train.augment_copies,
                               augment=train.augment, seed=train.seed)
    keras.backend.clear_session()
    how = "computed" if features.computed else "read"
    print(f"features: {how} {features.folder} ({'x'.join(map(str, features.feature_shape))} per image, "
          f"{len(features.y['train'])} training rows) in {time.perf_counter() - started:.1f} s", flush=True)
    return features


def print_summary(study: optuna.Study, location, study_name: str) -> None:
    """Where the results are and what to run next."""
    states = {state: 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for trial in study.get_trials(deepcopy=False):
        if trial.state in states:
            states[trial.state] += 1
    print(f"trials: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
          f"{states[TrialState.FAIL]} failed")
    try:
        best = study.best_trial
    except ValueError:
        print("no completed trial yet", file=sys.stderr)
        return
    model_path, _ = best_model_paths(location, study_name)
    print(f"best: trial {best.number}, validation accuracy {best.value:.4f}, "
          f"test accuracy {best.user_attrs.get('test_accuracy', float('nan')):.4f}, params {best.params}")
    print(f"best model: {model_path}")
    print(f"inspect: python -m study dashboard --storage '{location.display}'")
