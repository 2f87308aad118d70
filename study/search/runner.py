"""`python -m study run`: check the inputs, open or resume the study, enqueue the seeds, optimize.

Everything that can be checked before the first trial is checked here or in the trial
runtime's `prepare` (space file, storage URL, data folder, weights, device), so bad input
fails in seconds with one line and the storage is not touched. The study's total trial count
is `n_trials`: re-running the same command resumes it and stops once that many trials have
completed or been pruned. Trials train in the runtime `--isolation` names (see
`study.trial.runtime`); this process keeps the study loop and never imports TensorFlow.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study import __version__, interrupts
from study.config import RunConfig
from study.data.images import load_splits
from study.errors import StorageError
from study.search.objective import Objective
from study.search.progress import LiveTrialLine, format_trial_line
from study.space.objectives import OBJECTIVES, directions_of
from study.space.spec import SearchSpace, apply_run_flags, check_recipe_fits, load_space, seed_trial_params, values_of
from study.store.artifacts import given_url, open_checked, settle_store_url, study_store
from study.store.record import (
    FEATURE_CACHE_DIR_NAME,
    IMAGE_CACHE_DIR_NAME,
    STAGE2_SUFFIX,
    StudyKey,
    TrialKey,
    accuracy,
    best_by_accuracy,
)
from study.store.storage import (
    best_model_paths,
    check_writable,
    claim_single_writer,
    exclusive_section,
    front_models_dir,
    open_storage,
    resolve_storage,
    top_models_dir,
)
from study.trial.devices import describe_devices
from study.trial.job import RunSetup
from study.trial.runtime import make_runtime

SAMPLERS = ("tpe", "qmc", "random")
PRUNERS = ("median", "hyperband", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
METRIC_NAME = "validation accuracy"


def make_sampler(name: str, seed: int, jobs: int = 1) -> optuna.samplers.BaseSampler:
    """The sampler named on the command line, seeded. With `--jobs` above 1, TPE treats the
    trials still running as if they had scored the worst so far (Optuna's constant liar), so
    trials started together do not crowd one region."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=jobs > 1)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    return optuna.samplers.RandomSampler(seed=seed)


def sampler_seed(sampler: str, seed: int, scheme: str, pid: int | None = None) -> int:
    """The sampler's seed in this worker: `seed`, except for random and TPE sampling on a storage
    for parallel workers, where each worker adds its process id. Workers started together with
    one seed would otherwise propose the same configurations until TPE has history. QMC keeps
    the seed: its one sequence is shared through the storage."""
    if sampler == "qmc" or scheme == "sqlite":
        return seed
    return seed + (os.getpid() if pid is None else pid)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner named on the command line, sized to the epoch budget."""
    if name == "median":
        # Judge a trial only after a third of its epochs and once five trials set the median.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 3))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def study_attrs(config: RunConfig, space: SearchSpace, data, prepared) -> dict:
    """What the study remembers about how it was set up (for resumes and the report)."""
    train = asdict(config.train)
    return {
        StudyKey.SPACE_NAME: space.name,
        StudyKey.SPACE_FINGERPRINT: space.fingerprint(),
        StudyKey.SPACE_TEXT: space.text,
        StudyKey.DATA_DIR: str(data.root),
        StudyKey.DATA_FINGERPRINT: data.fingerprint,
        StudyKey.CLASS_NAMES: data.class_names,
        StudyKey.SPLIT_COUNTS: data.counts(),
        StudyKey.SPLIT_SEED: data.seed,
        StudyKey.SPLIT: asdict(config.split),
        StudyKey.SKIPPED_IMAGES: len(data.skipped),
        StudyKey.TRAIN: train,
        StudyKey.PACKAGE_VERSION: __version__,
        StudyKey.PYTHON: platform.python_version(),
        StudyKey.MACHINE: f"{platform.system()} {platform.machine()} {platform.processor()}".strip(),
        StudyKey.CPU_COUNT: os.cpu_count(),
        StudyKey.GPUS: [gpu["name"] for gpu in prepared.gpus],
        StudyKey.DEVICE: prepared.device,
        StudyKey.KERAS_BACKEND: prepared.backend,
        StudyKey.ISOLATION: config.isolation,
        StudyKey.EXPLICIT_FLAGS: list(config.explicit_flags),
        StudyKey.PACKAGES: package_versions(prepared.backend),
    }


BACKEND_PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def package_versions(backend: str = "tensorflow") -> dict[str, str]:
    """Installed versions of the packages a study's numbers depend on: its Keras backend's and the rest."""
    from importlib import metadata

    versions = {}
    for name in (*BACKEND_PACKAGES.get(backend, (backend,)), "keras", "optuna", "numpy", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_resumable(study: optuna.Study, space: SearchSpace, data, train, objectives=("accuracy",)) -> None:
    """Refuse to add trials to an existing study made with another space, data set or objectives."""
    attrs = study.user_attrs
    old_objectives = tuple(attrs.get(StudyKey.OBJECTIVES, ["accuracy"])) if attrs else tuple(objectives)
    if old_objectives != tuple(objectives):
        raise StorageError(f"study '{study.study_name}' was run with --objectives {','.join(old_objectives)}, "
                           f"not {','.join(objectives)}; use another --study-name")
    if StudyKey.SPACE_FINGERPRINT in attrs and attrs[StudyKey.SPACE_FINGERPRINT] != space.fingerprint():
        raise StorageError(
            f"study '{study.study_name}' exists with search space '{attrs.get(StudyKey.SPACE_NAME)}' "
            f"that differs from '{space.path}'; use another --study-name"
        )
    old = attrs.get(StudyKey.TRAIN, {})
    new = asdict(train)
    for key in ("mode", "alpha", "image_size", "weights"):
        if key in old and old[key] != new[key]:
            raise StorageError(f"study '{study.study_name}' was run with {key} {old[key]!r}, not {new[key]!r}; "
                               "use another --study-name")
    if StudyKey.DATA_FINGERPRINT in attrs and attrs[StudyKey.DATA_FINGERPRINT] != data.fingerprint:
        raise StorageError(
            f"study '{study.study_name}' was made on other data ('{attrs.get(StudyKey.DATA_DIR)}'); "
            "use another --study-name"
        )


def enqueue_seeds(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue each seed configuration that has no trial yet; returns how many were queued.

    A seed counts as present while any of its trials waits, runs or has finished; a seed
    whose trials all failed (an interrupted run, say) is queued again, so a resumed study
    still runs all of them. Call it inside `exclusive_section` when workers share a storage.
    """
    present = {t.user_attrs.get(TrialKey.SEED_NAME) for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.FAIL}
    queued = 0
    for seed in space.seeds:
        if seed.name in present:
            continue
        attrs = {TrialKey.SEED_NAME: seed.name}
        if seed.published_accuracy is not None:
            attrs[TrialKey.PUBLISHED_ACCURACY] = seed.published_accuracy
        if seed.published_time_ms is not None:
            attrs[TrialKey.PUBLISHED_TIME_MS] = seed.published_time_ms
        study.enqueue_trial(seed_trial_params(space, seed), user_attrs=attrs)
        queued += 1
    return queued


class StopAtTotal:
    """Stop this worker once the study's finished plus running trials reach the total.

    Counting the trials other workers are running keeps several workers from overshooting
    `--n-trials`, the study's total, by more than the trials that start at the same moment.
    Trials of dead workers whose heartbeat has gone stale are failed first, so they do not count.
    """

    def __init__(self, total: int):
        self.total = total
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
        if len(study.get_trials(deepcopy=False, states=FINISHED + (TrialState.RUNNING,))) >= self.total:
            self.stopped = True
            study.stop()


def fail_abandoned_trials(study: optuna.Study, storage) -> int:
    """Fail every RUNNING trial of a study that no process can be running; returns how many.

    Called only while this run holds the SQLite file's single-writer lock: any RUNNING trial
    there belongs to a run that ended without finishing it (killed, or the machine went down).
    """
    abandoned = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in abandoned:
        storage.set_trial_user_attr(trial._trial_id, TrialKey.FAIL_REASON,
                                    "abandoned: its run ended without finishing it")
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(abandoned)


def check_weights_file(weights: str) -> None:
    """What can be checked about `--weights` without TensorFlow: a named file exists and is HDF5.

    The weights are loaded into a base by the trial runtime before the first trial.
    """
    from study.trial.model import resolve_weights

    if weights.lower() not in ("imagenet", "none") and not Path(weights).is_dir():
        resolve_weights(weights, 1.0, 224)


def settle_space(space: SearchSpace, train, explicit: tuple[str, ...], augment_strength: float = 1.0):
    """The space and training settings of this run: flags reconciled with the space (see
    `apply_run_flags`), and the run's own image size and alpha taken from the space when it
    declares them (a fixed value, or its first choice). Returns (space, train, notes)."""
    given = {"image_size": train.image_size, "alpha": train.alpha, "batch_size": train.batch_size,
             "augment_strength": augment_strength}
    flags = {name: value if name in explicit else None for name, value in given.items()}
    space, notes = apply_run_flags(space, flags, train.mode)
    check_recipe_fits(space, train.epochs)
    train = replace(train, image_size=int(values_of(space, "image_size", train.image_size)[0]),
                    alpha=float(values_of(space, "alpha", train.alpha)[0]))
    return space, train, notes


def space_shapes(space: SearchSpace, train) -> tuple[tuple[float, int], ...]:
    """Every (alpha, image size) the space's trials can have."""
    alphas = values_of(space, "alpha", train.alpha)
    sizes = values_of(space, "image_size", train.image_size)
    return tuple((float(a), int(s)) for a, s in itertools.product(alphas, sizes))


def start_runtime(data, split, train, location, config_like, announce: bool = True, shapes=()):
    """Write the decoded images beside the storage, start the trial runtime and prepare the run.

    Returns (setup, runtime, prepared, data), `data` now memory-mapped from the image cache.
    `config_like` supplies isolation, jobs, trials_per_worker, worker_memory_mb and verbose; `shapes`
    the (alpha, image size) pairs of a space that searches them (images are decoded per size).
    """
    from study.data.array_cache import image_caches_for_sizes, memory_mapped, write_image_cache

    folder = write_image_cache(data, split, train.image_size, location.files_dir / IMAGE_CACHE_DIR_NAME)
    image_dirs = {}
    sizes = {size for _, size in shapes} - {train.image_size}
    if sizes:
        started = time.perf_counter()
        image_dirs = image_caches_for_sizes(data, split, sizes, location.files_dir / IMAGE_CACHE_DIR_NAME)
        if announce:
            print(f"images: also at {', '.join(f'{s} px' for s in sorted(sizes))} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    data = memory_mapped(data, folder)
    setup = RunSetup(train=train, class_names=tuple(data.class_names), images_dir=str(folder),
                     data_root=str(data.root), data_fingerprint=data.fingerprint, split_seed=data.seed,
                     feature_cache_root=str(location.files_dir / FEATURE_CACHE_DIR_NAME),
                     verbose=config_like.verbose,
                     image_dirs=tuple((size, str(path)) for size, path in sorted(image_dirs.items())),
                     shapes=tuple(shapes))
    runtime = make_runtime(config_like.isolation, config_like.trials_per_worker, config_like.worker_memory_mb,
                           jobs=config_like.jobs)
    try:
        started = time.perf_counter()
        prepared = runtime.prepare(setup)
    except BaseException:
        runtime.close()
        raise
    setup = replace(setup, resolved_weights=prepared.resolved_weights, features_dir=prepared.features_dir)
    prepared = replace(prepared, device=describe_devices(prepared.gpus, prepared.backend))
    if announce:
        print(prepared.device, flush=True)
    if prepared.features_dir and announce:
        how = "computed" if prepared.features_computed else "read"
        print(f"features: {how} {prepared.features_dir} ({'x'.join(map(str, prepared.feature_shape))} per image, "
              f"{prepared.feature_rows} training rows) in {time.perf_counter() - started:.1f} s", flush=True)
    return setup, runtime, prepared, data


def run_study(config: RunConfig) -> int:
    """Run (or resume) the study described by `config`; returns the process exit code."""
    space, train, notes = settle_space(load_space(config.space), config.train, config.explicit_flags,
                                       config.augment_strength)
    config = replace(config, train=train)
    for note in notes:
        print(note, flush=True)
    location = resolve_storage(config.storage)
    check_writable(location.files_dir)
    study_name = config.study_name or config.data_dir.resolve().name
    check_weights_file(train.weights)
    if config.artifacts:  # an unreachable store stops the run here, before the photos are even read
        open_checked(given_url(config.artifacts))

    started = time.perf_counter()
    data = load_splits(config.data_dir, train.image_size, config.split, train.seed)
    counts = data.counts()
    print(f"data: {data.root} - {len(data.class_names)} classes, train {counts['train']} / "
          f"val {counts['val']} / test {counts['test']} images"
          + (f", {len(data.skipped)} unreadable skipped" if data.skipped else "")
          + f" (decoded in {time.perf_counter() - started:.1f} s)", flush=True)

    setup, runtime, prepared, data = start_runtime(data, config.split, train, location, config,
                                                   shapes=space_shapes(space, train))
    try:
        study, storage = open_run_study(config, space, location, study_name, data, prepared)
        patience = study_patience(study, train.patience)
        if patience != train.patience:
            print(f"patience: {patience} epochs, as the study was run", flush=True)
        config = replace(config, train=replace(train, patience=patience))
        optimize_to_total(config, space, location, study, storage, study_name, setup, runtime)
        print_summary(study, location, study_name)
        if train.mode == "two-stage":
            from study.search.two_stage import run_stage_two

            model_path, meta_path = best_model_paths(location, study_name + STAGE2_SUFFIX)
            store, store_url = study_store(location, study.user_attrs, config.artifacts, study_name)
            arguments = dict(space=space, setup=setup, runtime=runtime, model_path=model_path, meta_path=meta_path,
                             artifact_store=store, shared_store=store_url is not None,
                             trial_timeout=config.trial_timeout)
            stage2 = run_stage_two(study, storage, arguments, config.stage2_top, config.unfreeze_blocks,
                                   config.stage2_lr_factor)
            print_summary(stage2, location, stage2.study_name)
    finally:
        runtime.close()
    return 0


def study_patience(study: optuna.Study, given: int | None) -> int | None:
    """The patience of this run: the one the study recorded unless another is given, which it refuses."""
    if StudyKey.TRAIN not in study.user_attrs:  # a new study records the given one
        return given
    recorded = study.user_attrs[StudyKey.TRAIN].get("patience")
    if given is not None and given != recorded:
        raise StorageError(f"study '{study.study_name}' was run with "
                           + (f"--patience {recorded}" if recorded else "no --patience")
                           + f", not --patience {given}; use another --study-name")
    return recorded if given is None else given


def open_run_study(config: RunConfig, space: SearchSpace, location, study_name: str, data, prepared):
    """Claim the storage, create or resume the study, clear ghosts, enqueue the seven."""
    train = config.train
    # Our own lines say what happens, failed trials with their reason; Optuna would add a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    claim_single_writer(location)
    storage = open_storage(location, heartbeat_seconds=config.heartbeat_seconds)
    print(f"storage: {location.display}  study: {study_name}", flush=True)
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, directions=directions_of(config.objectives), load_if_exists=True,
            sampler=make_sampler(config.sampler, sampler_seed(config.sampler, train.seed, location.scheme),
                                 config.jobs),
            pruner=make_pruner(config.pruner, train.epochs),
        )
    except ValueError as error:  # an existing study with other directions
        raise StorageError(f"study '{study_name}': {error}; use the study's --objectives or another "
                           "--study-name") from None
    check_resumable(study, space, data, train, config.objectives)
    study_patience(study, train.patience)  # refused here, before this run leaves a trace on the study
    store_url = settle_store_url(study.user_attrs, config.artifacts, study_name, location)
    if store_url and not config.artifacts:  # recorded by the run that created the study: check it too
        open_checked(store_url)
    if not study.user_attrs:
        if store_url:  # first: a worker starting beside this one must not see a study without it
            study.set_user_attr(StudyKey.ARTIFACTS, store_url)
        for key, value in study_attrs(config, space, data, prepared).items():
            study.set_user_attr(key, value)
        study.set_user_attr(StudyKey.OBJECTIVES, list(config.objectives))
        study.set_metric_names([OBJECTIVES[name].metric for name in config.objectives])
    commands = list(study.user_attrs.get(StudyKey.COMMAND_LINES, []))
    study.set_user_attr(StudyKey.COMMAND_LINES, commands + [config.command_line])
    if location.scheme == "sqlite":
        abandoned = fail_abandoned_trials(study, storage)
        if abandoned:
            print(f"failed {abandoned} trial(s) left running by an earlier run that ended without finishing them",
                  flush=True)
    with exclusive_section(location, storage, f"enqueue-seeds:{study_name}"):
        enqueue_seeds(study, space)
    return study, storage


def optimize_to_total(config: RunConfig, space: SearchSpace, location, study, storage, study_name: str,
                      setup, runtime) -> None:
    """Run trials until the study has `--n-trials` finished ones (or `--timeout` passes).

    Trials RUNNING elsewhere are waited for rather than counted as done: another worker may
    finish them, or they belong to a dead worker and are failed (and queued again) once its
    heartbeat is stale. Ctrl-C and SIGTERM are acted on between batches, epochs and trials.
    """
    train = config.train
    total = config.n_trials or space.n_trials
    deadline = time.monotonic() + config.timeout if config.timeout else None
    model_path, meta_path = best_model_paths(location, study_name)
    store, store_url = study_store(location, study.user_attrs, config.artifacts, study_name)
    if store_url:
        print(f"artifacts: {store_url}", flush=True)
    objective = Objective(space, setup, runtime, model_path, meta_path, artifact_store=store,
                          shared_store=store_url is not None,
                          # one live line cannot show several trials at once: their own lines still come
                          trial_timeout=config.trial_timeout, live_line=LiveTrialLine() if config.jobs == 1 else None,
                          objectives=config.objectives, top_dir=top_models_dir(location, study_name),
                          keep_top=config.keep_top,
                          job_options={"keep_model_dir": str(front_models_dir(location, study_name)),
                                       "patience": train.patience})
    announced = waiting_said = False
    can_wait = bool(config.heartbeat_seconds) and location.scheme not in ("sqlite", "journal")
    with interrupts.deferred():
        while True:
            interrupts.raise_if_requested()
            optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
            finished = len(study.get_trials(deepcopy=False, states=FINISHED))
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            remaining = total - finished - running
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if remaining > 0:
                if not announced:
                    print(f"running {remaining} trial(s) of {total} ({finished} finished before), "
                          f"{train.epochs} epochs each, mode {train.mode}"
                          + (f", {config.jobs} at a time" if config.jobs > 1 else "")
                          + (f", objectives {', '.join(config.objectives)} (multi-objective: no pruning)"
                             if len(config.objectives) > 1 else ""), flush=True)
                    announced = True
                stop_at_total = StopAtTotal(total)
                study.optimize(
                    objective, n_trials=remaining, timeout=left, n_jobs=config.jobs, catch=(Exception,),
                    gc_after_trial=True,
                    callbacks=[stop_at_total, lambda s, t: print(format_trial_line(s, t), flush=True),
                               lambda s, t: interrupts.raise_if_requested()],
                )
                # Failed trials do not count towards the total: run more, but only while trials
                # still finish, so a setting that fails every trial cannot loop for ever.
                if not stop_at_total.stopped and len(study.get_trials(deepcopy=False, states=FINISHED)) == finished:
                    print(f"stopping: none of the last {remaining} trial(s) finished (see their fail_reason)",
                          file=sys.stderr, flush=True)
                    break
                continue
            if not announced:
                print(f"study '{study_name}' already has {finished} finished trials (target {total}); "
                      "raise --n-trials to add more")
                announced = True
            if finished >= total or running == 0 or not can_wait:
                break
            if not waiting_said:
                print(f"waiting for {running} trial(s) running elsewhere to finish, or to be failed and "
                      f"queued again once their worker's heartbeat is {2 * config.heartbeat_seconds} s old",
                      flush=True)
                waiting_said = True
            pause(min(5.0, config.heartbeat_seconds / 2))


def pause(seconds: float) -> None:
    """Sleep, waking early for Ctrl-C or SIGTERM."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        interrupts.raise_if_requested()
        time.sleep(0.1)


def print_summary(study: optuna.Study, location, study_name: str) -> None:
    """Where the results are and what to run next."""
    states = {state: 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for trial in study.get_trials(deepcopy=False):
        if trial.state in states:
            states[trial.state] += 1
    print(f"trials: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
          f"{states[TrialState.FAIL]} failed")
    best = best_by_accuracy(study.get_trials(deepcopy=False))
    if best is None:
        print("no completed trial yet", file=sys.stderr)
        return
    model_path, _ = best_model_paths(location, study_name)
    print(f"best: trial {best.number}, validation accuracy {accuracy(best):.4f}, "
          f"test accuracy {best.user_attrs.get(TrialKey.TEST_ACCURACY, float('nan')):.4f}, params {best.params}")
    print(f"best model: {model_path}")
    print(f"inspect: python -m study dashboard --storage '{location.display}'")
