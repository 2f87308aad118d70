"""The Optuna objective: sample a head, have the runtime train it with pruning, record it, return its best.

One `Objective` is made per run with the run's `RunSetup` and a trial runtime (a worker
process by default, see `study.trial.runtime`); each call is one trial: sample plain values
from the space, send them to the runtime, report each epoch's validation accuracy to the
pruner as it streams back (the seven are never pruned), record everything as user attrs,
keep the model if it is the study's best so far, and return the best validation accuracy.
With `run --jobs N` Optuna calls it from N threads at once: each call leases its own runtime
(`study.trial.runtime_pool`), and choosing and saving the best model is one step at a time.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import asdict
from pathlib import Path

import optuna

from study import interrupts
from study.space.objectives import objective_values
from study.space.spec import SearchSpace, suggest
from study.store.record import TrialKey, accuracy
from study.trial.fit import EpochLog
from study.trial.job import RunSetup, TrialHooks, TrialJob, TrialTimedOut
from study.trial.runtime import TrialFailed


class Objective:
    """Callable objective shared by all trials of one run."""

    def __init__(self, space: SearchSpace, setup: RunSetup, runtime, model_path: Path, meta_path: Path,
                 artifact_store=None, trial_timeout: float | None = None, job_options: dict | None = None,
                 live_line=None, objectives: tuple[str, ...] = ("accuracy",), top_dir: Path | None = None,
                 keep_top: int = 0, shared_store: bool = False):
        self.space = space
        self.setup = setup
        self.train = setup.train
        self.runtime = runtime
        self.model_path = model_path
        self.meta_path = meta_path
        self.artifact_store = artifact_store  # None: no dashboard artifacts or notes
        # run --artifacts: the store every machine reads, so the best model's predictions and
        # metadata and the kept models go there too (study.store.artifacts)
        self.shared_store = shared_store and artifact_store is not None
        self.trial_timeout = trial_timeout
        self.job_options = job_options or {}  # TrialJob fields: kind, unfreeze_blocks, lr_factor
        self.live_line = live_line  # progress.LiveTrialLine, or None
        self.objectives = objectives  # more than one: multi-objective, which Optuna cannot prune
        self.top_dir = top_dir if keep_top > 0 else None  # where the models of the best `keep_top` trials stay
        self.keep_top = keep_top
        self._kept = threading.Lock()  # one trial at a time decides and writes the kept and best models
        self._best_saved: float | None = None  # best validation accuracy this run saved a model for

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        interrupts.raise_if_requested()
        with self.runtime.lease() as runtime:
            return self._run(trial, runtime)

    def _run(self, trial: optuna.Trial, runtime) -> float | list[float]:
        params = suggest(trial, self.space)
        for spec in self.space.parameters:
            if spec.kind == "fixed":
                trial.set_user_attr(spec.name, params[spec.name])
        multi = len(self.objectives) > 1
        is_seed = TrialKey.SEED_NAME in trial.user_attrs
        log = EpochLog()

        def on_built(trainable: int, total: int) -> None:
            self._record_worker(trial, runtime)
            trial.set_user_attr(TrialKey.TRAINABLE_PARAMS, trainable)
            trial.set_user_attr(TrialKey.TOTAL_PARAMS, total)

        def on_epoch(epoch: int, epoch_log: EpochLog) -> None:
            self._record_epochs(trial, epoch_log)
            if self.live_line is not None:
                self.live_line.epoch(epoch, epoch_log.history["val_accuracy"][-1])
            if multi:
                return
            trial.report(epoch_log.history["val_accuracy"][-1], step=epoch)
            # After the last epoch there is nothing left to save: the trial completes.
            if not is_seed and epoch < self.train.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        job = TrialJob(trial.number, params, self.train.seed + trial.number, timeout=self.trial_timeout,
                       **self.job_options)
        if self.live_line is not None:
            self.live_line.start(trial.number, self.train.epochs)
        try:
            result = runtime.run(self.setup, job, TrialHooks(on_built, on_epoch), log)
        except optuna.TrialPruned:
            self._record_epochs(trial, log)
            self._record_artifacts(trial, params, "PRUNED", log.history, None, None)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(TrialKey.FAIL_REASON, "interrupted")
            raise
        except Exception as error:
            if isinstance(error, (TrialFailed, TrialTimedOut)):
                reason = str(error)
            else:
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            trial.set_user_attr(TrialKey.FAIL_REASON, reason)
            self._record_epochs(trial, log)
            raise
        finally:  # also when the worker died before the model was built
            if self.live_line is not None:
                self.live_line.stop()
            self._record_worker(trial, runtime)

        trial.set_user_attr(TrialKey.BEST_EPOCH, result.best_epoch)
        trial.set_user_attr(TrialKey.TEST_ACCURACY, result.test_accuracy)
        trial.set_user_attr(TrialKey.TRAIN_SECONDS, result.train_seconds)
        trial.set_user_attr(TrialKey.PEAK_RSS_MB, result.peak_rss_mb)
        for key, value in result.extra_attrs.items():
            trial.set_user_attr(key, value)
        with self._kept:
            if job.keep_model_dir and self.top_dir is not None:
                self._keep_top_models(trial, Path(job.keep_model_dir), result)
            if job.keep_model_dir:
                self._keep_front_models(trial, Path(job.keep_model_dir), result)
                if self.shared_store:
                    self._upload_kept_model(trial, Path(job.keep_model_dir))
        self._record_artifacts(trial, params, "COMPLETE", result.history, result.best_epoch, result.test_accuracy)
        with self._kept:
            if self._is_new_best(trial, result.best_val_accuracy):
                self._save_best(trial, result.best_val_accuracy, result.test_accuracy, params, runtime)
        if multi:
            return objective_values(self.objectives, result.best_val_accuracy, result.extra_attrs)
        return result.best_val_accuracy

    def _keep_top_models(self, trial: optuna.Trial, kept_dir: Path, result) -> None:
        """Copy this trial's kept model into the top folder if it is among the `keep_top` most
        accurate trials, and delete the models of trials that no longer are."""
        import shutil

        from study.store.record import kept_model_name, top_trials

        completed = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        current = optuna.trial.create_trial(value=result.best_val_accuracy)
        current.number = trial.number
        keep = {t.number for t in top_trials(completed + [current], self.keep_top, include_seeds=True)}
        self.top_dir.mkdir(parents=True, exist_ok=True)
        source = kept_dir / kept_model_name(trial.number)
        if trial.number in keep and source.is_file():
            # written under a temporary name, then renamed: a reader never sees half a model
            partial = self.top_dir / (kept_model_name(trial.number) + ".partial")
            shutil.copyfile(source, partial)
            partial.replace(self.top_dir / kept_model_name(trial.number))
        for t in completed + [current]:
            if t.number not in keep:
                (self.top_dir / kept_model_name(t.number)).unlink(missing_ok=True)

    @staticmethod
    def _keep_front_models(trial: optuna.Trial, folder: Path, result) -> None:
        """Delete the kept models of trials no longer on a front (this one's too, if it is not).

        Models of trials still running elsewhere are left alone; a file another process
        removed first is not an error.
        """
        from study.stats.front import cost_points, front_numbers
        from study.store.record import kept_model_name

        completed = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        current = optuna.trial.create_trial(value=result.best_val_accuracy, user_attrs=dict(trial.user_attrs))
        current.number = trial.number
        keep = front_numbers(cost_points(completed + [current]))  # this trial still RUNNING: not in completed
        for t in completed + [current]:
            if t.number not in keep:
                (folder / kept_model_name(t.number)).unlink(missing_ok=True)

    @staticmethod
    def _record_worker(trial: optuna.Trial, runtime) -> None:
        if runtime.worker_pid is not None:
            trial.set_user_attr(TrialKey.WORKER_PID, runtime.worker_pid)

    @staticmethod
    def _record_epochs(trial: optuna.Trial, log: EpochLog) -> None:
        trial.set_user_attr(TrialKey.HISTORY, log.history)
        trial.set_user_attr(TrialKey.EPOCH_SECONDS, log.epoch_seconds)
        trial.set_user_attr(TrialKey.EPOCHS_RUN, len(log.epoch_seconds))
        trial.set_user_attr(TrialKey.TRAIN_SECONDS, sum(log.epoch_seconds))

    def _record_artifacts(self, trial, params, state, history, best_epoch, test_accuracy) -> None:
        """The dashboard's learning curve and note; a failure here is reported, not fatal."""
        if self.artifact_store is None:
            return
        from study.search.trial_notes import record_trial

        label = trial.user_attrs.get(TrialKey.SEED_NAME, f"trial {trial.number}")
        try:
            record_trial(self.artifact_store, trial, params, state, history, best_epoch, test_accuracy, label)
        except Exception as error:
            print(f"warning: trial {trial.number}: artifacts not saved ({type(error).__name__}: {error})",
                  file=sys.stderr, flush=True)

    def _is_new_best(self, trial: optuna.Trial, value: float) -> bool:
        """Better than every completed trial, and than any trial of this run whose model was saved
        but which is still finishing (not COMPLETE until its objective call returns). A model
        saved meanwhile by another worker is checked again by `save_best_model` itself."""
        if self._best_saved is not None and value <= self._best_saved:
            return False
        completed = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return all(value > accuracy(t) for t in completed if t.number != trial.number)

    def _save_best(self, trial: optuna.Trial, value: float, test_accuracy: float, params: dict, runtime) -> None:
        """Have the runtime write the model; the trial's result stands even if it cannot."""
        meta = {
            "study_name": trial.study.study_name,
            "trial_number": trial.number,
            "validation_accuracy": value,
            "test_accuracy": test_accuracy,
            "params": params,
            "class_names": list(self.setup.class_names),
            "image_size": int(params.get("image_size", self.train.image_size)),
            "train": {k: v for k, v in asdict(self.train).items() if k != "augment"},
        }
        try:
            saved = runtime.save(str(self.model_path), str(self.meta_path), meta)
        except Exception as error:
            reason = f"{error}".splitlines()[0][:300] if isinstance(error, (TrialFailed, RuntimeError)) \
                else f"{type(error).__name__}: {error}".splitlines()[0][:300]
            trial.set_user_attr(TrialKey.SAVE_ERROR, reason)
            print(f"warning: trial {trial.number}: best model not saved ({reason})", file=sys.stderr, flush=True)
            return
        if saved:
            self._best_saved = value
        if saved and self.artifact_store is not None:
            from study.store.artifacts import upload_file, upload_model
            from study.store.record import predictions_path

            try:
                trial.set_user_attr(TrialKey.MODEL_ARTIFACT_ID,
                                    upload_model(self.artifact_store, trial, self.model_path))
                if self.shared_store:
                    predictions = predictions_path(self.model_path)
                    if predictions.is_file():
                        trial.set_user_attr(TrialKey.PREDICTIONS_ARTIFACT_ID, upload_file(
                            self.artifact_store, trial, predictions, "application/octet-stream"))
                    # last: readers take a trial as uploaded once this id is set
                    trial.set_user_attr(TrialKey.BEST_META_ARTIFACT_ID, upload_file(
                        self.artifact_store, trial, self.meta_path, "application/json"))
            except Exception as error:
                self._upload_failed(trial, "best model", error)

    def _upload_kept_model(self, trial: optuna.Trial, kept_dir: Path) -> None:
        """Put a kept (front or top-K) model in the shared store, for export-model and ensemble anywhere."""
        from study.store.artifacts import upload_file
        from study.store.record import kept_model_name

        for folder in (kept_dir, self.top_dir):
            path = folder / kept_model_name(trial.number) if folder is not None else None
            if path is not None and path.is_file():
                try:
                    trial.set_user_attr(TrialKey.KEPT_MODEL_ARTIFACT_ID,
                                        upload_file(self.artifact_store, trial, path, "application/zip"))
                except Exception as error:
                    self._upload_failed(trial, "kept model", error)
                return

    @staticmethod
    def _upload_failed(trial: optuna.Trial, what: str, error: Exception) -> None:
        from study.store.artifact_store import store_error_reason

        reason = f"{what} not uploaded: {store_error_reason(error)}"
        trial.set_user_attr(TrialKey.SAVE_ERROR, reason)
        print(f"warning: trial {trial.number}: {reason}", file=sys.stderr, flush=True)
