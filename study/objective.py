"""The Optuna objective: sample a head, build and fit it with pruning, record it, return its best.

One `Objective` is made per run with the decoded data; each call is one trial:
clear the Keras session, sample plain values from the space, build MobileNet + head, fit
while reporting validation accuracy per epoch (the seven are never pruned), restore the best
epoch, measure test accuracy, record everything as user attrs, keep the model if it is the
study's best so far, and return the best validation accuracy reached.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import resource
import sys
from dataclasses import asdict
from pathlib import Path

import optuna

from study.analysis import SEED_ATTR
from study.config import TrainConfig
from study.data import DataSplits, make_dataset
from study.model import build_head, build_model, count_params, with_base
from study.search_space import SearchSpace, suggest
from study.training import EpochLog, fit_best_epoch


class Objective:
    """Callable objective shared by all trials of one run."""

    def __init__(self, space: SearchSpace, data: DataSplits, train: TrainConfig,
                 resolved_weights: str | None, model_path: Path, meta_path: Path,
                 verbose: bool = False, artifact_store=None, features=None):
        self.space = space
        self.data = data
        self.train = train
        self.resolved_weights = resolved_weights
        self.model_path = model_path
        self.meta_path = meta_path
        self.verbose = verbose
        self.artifact_store = artifact_store  # None: no dashboard artifacts or notes
        self.features = features  # a FeatureSet: train heads on cached base outputs

    def __call__(self, trial: optuna.Trial) -> float:
        import keras

        keras.backend.clear_session()
        gc.collect()
        params = suggest(trial, self.space)
        keras.utils.set_random_seed(self.train.seed + trial.number)
        log = EpochLog()
        is_seed = SEED_ATTR in trial.user_attrs
        try:
            model = self._build(params)
            trainable, total = count_params(model)
            trial.set_user_attr("trainable_params", trainable)
            trial.set_user_attr("total_params", total)
            for name in ("head_depth", "dense_units", "learning_rate", "dropout"):
                if self.space.parameter(name).kind == "fixed":
                    trial.set_user_attr(name, params[name])

            def on_epoch(epoch: int, epoch_log: EpochLog) -> None:
                self._record_epochs(trial, epoch_log)
                trial.report(epoch_log.history["val_accuracy"][-1], step=epoch)
                # After the last epoch there is nothing left to save: the trial completes.
                if not is_seed and epoch < self.train.epochs and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}")

            train_data, val_data, test_data = self._datasets(trial.number)
            result = fit_best_epoch(model, train_data, val_data, self.train.epochs,
                                    on_epoch=on_epoch, log=log, verbose=2 if self.verbose else 0)
            _, test_accuracy = model.evaluate(test_data, verbose=0)
        except optuna.TrialPruned:
            self._record_epochs(trial, log)
            self._record_artifacts(trial, params, "PRUNED", log.history, None, None)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        except Exception as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            trial.set_user_attr("fail_reason", reason)
            self._record_epochs(trial, log)
            raise
        finally:
            trial.set_user_attr("peak_rss_mb", peak_rss_mb())

        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("test_accuracy", float(test_accuracy))
        trial.set_user_attr("train_seconds", result.train_seconds)
        self._record_artifacts(trial, params, "COMPLETE", result.history, result.best_epoch, float(test_accuracy))
        if self._is_new_best(trial, result.best_val_accuracy):
            try:
                self._save_best(model, trial, result.best_val_accuracy, float(test_accuracy), params)
            except Exception as error:  # the trial's result stands even if its model cannot be written
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                trial.set_user_attr("save_error", reason)
                print(f"warning: trial {trial.number}: best model not saved ({reason})", file=sys.stderr, flush=True)
        del model
        return result.best_val_accuracy

    def _build(self, params: dict):
        """The model a trial trains: the whole network, or only the head on cached features."""
        if self.features is not None:
            return build_head(feature_shape=self.features.feature_shape, n_classes=len(self.data.class_names),
                              head_depth=params["head_depth"], dense_units=params["dense_units"],
                              dropout=params["dropout"], learning_rate=params["learning_rate"])
        return build_model(
            n_classes=len(self.data.class_names), image_size=self.train.image_size,
            alpha=self.train.alpha, weights=self.resolved_weights, mode=self.train.mode,
            precision=self.train.precision, head_depth=params["head_depth"],
            dense_units=params["dense_units"], dropout=params["dropout"], learning_rate=params["learning_rate"],
        )

    def _datasets(self, number: int):
        """Train / validation / test pipelines: cached features, or images (augmented for training)."""
        batch, seed = self.train.batch_size, self.train.seed + number
        if self.features is not None:
            x, y = self.features.x, self.features.y
            return (make_dataset(x["train"], y["train"], batch, shuffle=True, seed=seed),
                    make_dataset(x["val"], y["val"], batch), make_dataset(x["test"], y["test"], batch))
        x, y = self.data.x, self.data.y
        return (make_dataset(x["train"], y["train"], batch, shuffle=True, augment=self.train.augment, seed=seed),
                make_dataset(x["val"], y["val"], batch), make_dataset(x["test"], y["test"], batch))

    @staticmethod
    def _record_epochs(trial: optuna.Trial, log: EpochLog) -> None:
        trial.set_user_attr("history", log.history)
        trial.set_user_attr("epoch_seconds", log.epoch_seconds)
        trial.set_user_attr("epochs_run", len(log.epoch_seconds))
        trial.set_user_attr("train_seconds", sum(log.epoch_seconds))

    def _record_artifacts(self, trial, params, state, history, best_epoch, test_accuracy) -> None:
        """The dashboard's learning curve and note; a failure here is reported, not fatal."""
        if self.artifact_store is None:
            return
        from study.artifacts import record_trial

        label = trial.user_attrs.get(SEED_ATTR, f"trial {trial.number}")
        try:
            record_trial(self.artifact_store, trial, params, state, history, best_epoch, test_accuracy, label)
        except Exception as error:
            print(f"warning: trial {trial.number}: artifacts not saved ({type(error).__name__}: {error})",
                  file=sys.stderr, flush=True)

    @staticmethod
    def _is_new_best(trial: optuna.Trial, value: float) -> bool:
        completed = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return all(value > t.value for t in completed if t.number != trial.number)

    def _save_best(self, model, trial: optuna.Trial, value: float, test_accuracy: float, params) -> None:
        """Write the model and its class names atomically, replacing the previous best.

        Workers sharing the folder save under a lock, and only over a worse model: another
        worker may have saved a better one since this trial was found to be the best.
        """
        lock_path = self.model_path.with_name(self.model_path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.meta_path.is_file():
                saved = json.loads(self.meta_path.read_text(encoding="utf-8"))
                if saved.get("study_name") == trial.study.study_name and saved.get("validation_accuracy", -1) >= value:
                    return
            unique = f"{os.getpid()}-{trial.number}"
            tmp_model = self.model_path.with_name(f"{self.model_path.stem}.{unique}.tmp.keras")
            if self.features is not None:  # a head alone cannot classify images: put it on the base
                model = with_base(model, image_size=self.train.image_size, alpha=self.train.alpha,
                                  weights=self.resolved_weights, learning_rate=params["learning_rate"])
            model.save(tmp_model)
            os.replace(tmp_model, self.model_path)
            meta = {
                "study_name": trial.study.study_name,
                "trial_number": trial.number,
                "validation_accuracy": value,
                "test_accuracy": test_accuracy,
                "params": params,
                "class_names": self.data.class_names,
                "image_size": self.train.image_size,
                "train": {k: v for k, v in asdict(self.train).items() if k != "augment"},
            }
            tmp_meta = self.meta_path.with_name(f"{self.meta_path.name}.{unique}.tmp")
            tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
            os.replace(tmp_meta, self.meta_path)
        if self.artifact_store is not None:
            from study.artifacts import upload_model

            trial.set_user_attr("model_artifact_id", upload_model(self.artifact_store, trial, self.model_path))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
