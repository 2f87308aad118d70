"""`run --engine keras-tuner`: the same space, data, model and epoch budget searched by Keras Tuner.

Keras Tuner (Hyperband by default, or Bayesian optimisation or random search) samples the
space file's hyperparameters into the same `build_model`, trains on the same decoded data,
and keeps its project folder beside the storage. Keras Tuner owns its trial loop, so the
search runs as one job of the trial runtime (a worker process by default) and hands back
its trials as plain records. Its trials are then imported into the same
storage as the Optuna study `<name>-keras-tuner` (replaced on every import), with their
start and end times, so the dashboard, `compare` and the report show both engines.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.config import RunConfig
from study.data.images import load_splits, make_dataset
from study.errors import SearchSpaceError, StudyError
from study.space.spec import MOBILENET_PARAMETERS, RECIPE_PARAMETERS, SearchSpace, distribution, load_space, parse_space
from study.store.record import KERAS_TUNER_SUFFIX, StudyKey, TrialKey
from study.store.storage import check_writable, claim_single_writer, open_storage, resolve_storage, study_file_stem
from study.trial.job import RunSetup
from study.trial.model import build_model
from study.trial.runtime import TrialFailed

TUNERS = ("hyperband", "bayesian", "random")
KT_STATES = {"COMPLETED": TrialState.COMPLETE, "INVALID": TrialState.FAIL, "FAILED": TrialState.FAIL,
             "STOPPED": TrialState.PRUNED, "RUNNING": TrialState.FAIL, "IDLE": TrialState.FAIL}


def sample_keras_tuner(hp, space: SearchSpace) -> dict:
    """The space's hyperparameters as Keras Tuner `hp` calls; returns plain values."""
    params = {}
    for spec in space.parameters:
        if spec.kind == "fixed":
            params[spec.name] = spec.value
        elif spec.kind == "categorical":
            params[spec.name] = hp.Choice(spec.name, list(spec.choices))
        elif spec.kind == "int":
            params[spec.name] = hp.Int(spec.name, int(spec.low), int(spec.high), step=int(spec.step) if spec.step else None,
                                       sampling="log" if spec.log else "linear")
        else:
            params[spec.name] = hp.Float(spec.name, spec.low, spec.high, step=spec.step,
                                         sampling="log" if spec.log else "linear")
    return params


def make_hypermodel(space: SearchSpace, n_classes: int, train, weights: str | None, timings: dict,
                    deadline: float | None):
    """A Keras Tuner HyperModel over `build_model` that times each fit (Keras Tuner does not)."""
    import keras
    import keras_tuner as kt

    class SpaceHyperModel(kt.HyperModel):
        def build(self, hp):
            keras.backend.clear_session()
            params = sample_keras_tuner(hp, space)
            return build_model(n_classes=n_classes, image_size=train.image_size, alpha=train.alpha,
                               weights=weights, mode=train.mode, precision=train.precision, jit=train.jit,
                               **params)

        def fit(self, hp, model, *args, **kwargs):
            if deadline is not None and time.time() > deadline:
                raise kt.errors.FatalError("timeout reached")
            started = datetime.now()
            history = model.fit(*args, **kwargs)
            timings[json.dumps(hp.values, sort_keys=True)] = (started.isoformat(), datetime.now().isoformat())
            return history

    return SpaceHyperModel()


def make_tuner(kind: str, hypermodel, train, n_trials: int, directory: Path, project: str):
    import keras_tuner as kt

    common = dict(objective=kt.Objective("val_accuracy", direction="max"), seed=train.seed,
                  directory=str(directory), project_name=project, overwrite=False)
    if kind == "hyperband":
        # One Hyperband iteration holds only a few trials; iterate until --n-trials or --timeout.
        tuner = kt.Hyperband(hypermodel, max_epochs=train.epochs, factor=3, hyperband_iterations=n_trials,
                             **common)
        tuner.oracle.max_trials = n_trials
        return tuner
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=n_trials, **common)
    return kt.RandomSearch(hypermodel, max_trials=n_trials, **common)


def search(setup: RunSetup, space_text: str, space_name: str, tuner_kind: str, n_trials: int, directory: str,
           project: str, deadline: float | None) -> tuple[list[dict], str | None]:
    """In a trial worker: run (or resume) the Keras Tuner search; its trials as plain records
    and a warning line if it stopped early."""
    import keras_tuner  # noqa: F401  (fails here, not mid-search, if missing)

    from study.trial.job import load_splits_from_cache

    space = parse_space(space_text, f"{space_name}.toml (as run)")
    train = setup.train
    data = load_splits_from_cache(setup)
    timings: dict = {}
    hypermodel = make_hypermodel(space, len(setup.class_names), train, setup.resolved_weights, timings, deadline)
    tuner = make_tuner(tuner_kind, hypermodel, train, n_trials, Path(directory), project)
    batch, warning = train.batch_size, None
    try:
        tuner.search(
            make_dataset(data.x["train"], data.y["train"], batch, shuffle=True, augment=train.augment, seed=train.seed),
            validation_data=make_dataset(data.x["val"], data.y["val"], batch),
            epochs=train.epochs, verbose=2 if setup.verbose else 0)
    except Exception as error:  # Keras Tuner ends a search with FatalError (our timeout among them)
        if "timeout reached" not in str(error):
            warning = f"keras-tuner stopped: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return trial_records(tuner, timings), warning


def trial_records(tuner, timings: dict) -> list[dict]:
    """Keras Tuner's trials in creation order, as plain values (they cross a process boundary)."""
    def creation_order(item):
        return (0, int(item[0]), "") if item[0].isdigit() else (1, 0, item[0])

    records = []
    for trial_id, kt_trial in sorted(tuner.oracle.trials.items(), key=creation_order):
        values = dict(kt_trial.hyperparameters.values)
        history = kt_trial.metrics.get_history("val_accuracy") if kt_trial.metrics.exists("val_accuracy") else []
        records.append({"trial_id": trial_id, "values": values, "status": str(kt_trial.status),
                        "score": None if kt_trial.score is None else float(kt_trial.score),
                        "val_accuracy": [float(o.value[0]) for o in history],
                        "timing": timings.get(json.dumps(values, sort_keys=True))})
    return records


def import_trials(study: optuna.Study, space: SearchSpace, records: list[dict]) -> int:
    """Copy Keras Tuner's trial records into an Optuna study; returns how many were copied."""
    distributions = {spec.name: distribution(spec) for spec in space.varied()}
    for record in records:
        values = record["values"]
        params = {name: values[name] for name in distributions if name in values}
        state = KT_STATES.get(record["status"], TrialState.FAIL)
        if state == TrialState.COMPLETE and record["score"] is None:
            state = TrialState.FAIL
        user_attrs = {TrialKey.KERAS_TUNER_TRIAL_ID: record["trial_id"],
                      TrialKey.HISTORY: {"val_accuracy": record["val_accuracy"]}}
        user_attrs.update({k: v for k, v in values.items() if k.startswith(TrialKey.KERAS_TUNER_PREFIX)})
        user_attrs.update({spec.name: spec.value for spec in space.parameters if spec.kind == "fixed"})
        frozen = optuna.trial.create_trial(
            state=state, value=record["score"] if state == TrialState.COMPLETE else None,
            params=params, distributions={k: distributions[k] for k in params}, user_attrs=user_attrs)
        if record["timing"]:
            started, completed = (datetime.fromisoformat(text) for text in record["timing"])
            frozen.datetime_start, frozen.datetime_complete = started, completed
            frozen.set_user_attr(TrialKey.TRAIN_SECONDS, (completed - started).total_seconds())
        study.add_trial(frozen)
    return len(records)


def run_keras_tuner(config: RunConfig, tuner_kind: str) -> int:
    """Search the space with Keras Tuner in a worker process and import its trials; returns the exit code."""
    for package in ("keras_tuner", "tensorboard"):  # keras-tuner imports tensorboard inside every trial
        if importlib.util.find_spec(package) is None:
            raise StudyError(f"--engine keras-tuner needs the package '{package}': "
                             "pip install keras-tuner tensorboard")
    from study.search.runner import check_weights_file, start_runtime

    train = config.train
    space = load_space(config.space)
    searched = [p.name for p in space.parameters if p.name in MOBILENET_PARAMETERS + RECIPE_PARAMETERS]
    if searched:
        raise SearchSpaceError(f"{space.path}: params.{searched[0]}: the keras-tuner engine searches the head "
                               "only; use --engine optuna for spaces that declare "
                               + ", ".join(MOBILENET_PARAMETERS + RECIPE_PARAMETERS))
    location = resolve_storage(config.storage)
    check_writable(location.files_dir)
    base_name = config.study_name or config.data_dir.resolve().name
    study_name = base_name + KERAS_TUNER_SUFFIX
    check_weights_file(train.weights)
    data = load_splits(config.data_dir, train.image_size, config.split, train.seed)
    claim_single_writer(location)
    storage = open_storage(location)
    n_trials = config.n_trials or space.n_trials
    directory = location.files_dir / "keras-tuner"
    project = study_file_stem(base_name)
    print(f"keras-tuner {tuner_kind}: up to {n_trials} trials, project {directory / project}", flush=True)
    setup, runtime, _, _ = start_runtime(data, config.split, train, location, config)
    # Keras Tuner owns its trial loop, so the whole search is one job of a worker process: the
    # run stays free of TensorFlow, and a worker that dies ends the search, not the run.
    try:
        records, warning = runtime.call(
            "study.search.keras_tuner_engine:search", setup=setup, space_text=space.text, space_name=space.name,
            tuner_kind=tuner_kind, n_trials=n_trials, directory=str(directory), project=project,
            deadline=time.time() + config.timeout if config.timeout else None)
    except TrialFailed as failure:
        print(f"study: keras-tuner search stopped: {failure.reason}; its finished trials are kept in "
              f"{directory / project}: run the same command again to resume and import them", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    if warning:
        print(f"warning: {warning}", flush=True)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.delete_study(study_name=study_name, storage=storage)  # re-import the whole project
    except KeyError:
        pass
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    study.set_metric_names(["validation accuracy"])
    study.set_user_attr(StudyKey.ENGINE, f"keras-tuner {tuner_kind}")
    study.set_user_attr(StudyKey.SPACE_TEXT, space.text)
    study.set_user_attr(StudyKey.SPACE_NAME, space.name)
    count = import_trials(study, space, records)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = max((t.value for t in done), default=float("nan"))
    print(f"imported {count} keras-tuner trials into study '{study_name}' ({len(done)} complete, best {best:.4f})")
    return 0
