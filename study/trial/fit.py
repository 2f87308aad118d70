"""Fit one compiled model for a fixed number of epochs and keep its best epoch (no Optuna here).

Per-epoch metrics go to an optional `on_epoch` hook (the objective reports them to Optuna
and may stop the trial there); a non-finite loss stops training with FloatingPointError.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class FitResult:
    """What a fit produced, with the model already holding its best epoch's weights."""

    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    best_epoch: int  # 1-based
    best_val_accuracy: float

    @property
    def epochs_run(self) -> int:
        return len(self.epoch_seconds)


@dataclass
class EpochLog:
    """History collected epoch by epoch; survives a fit that ends in an exception."""

    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    epoch_seconds: list[float] = field(default_factory=list)


def patience_ran_out(val_accuracy: list[float], patience: int | None) -> bool:
    """True when the last `patience` epochs brought no new best validation accuracy.

    With patience P, training stops at epoch best + P: P epochs in a row at most as good as
    the best (a tie is not an improvement, as in Keras' EarlyStopping). None: never.
    """
    if patience is None or not val_accuracy:
        return False
    best_index = max(range(len(val_accuracy)), key=lambda i: (val_accuracy[i], -i))  # the first best
    return len(val_accuracy) - 1 - best_index >= patience


def make_epoch_callback(log: EpochLog, on_epoch: Callable[[int, EpochLog], None] | None,
                        on_batch: Callable[[], None] | None = None, patience: int | None = None):
    """A Keras callback that records each epoch into `log`, checks the loss, then calls `on_epoch`.

    `on_batch`, if given, is called after every training batch (a time limit, say); with
    `patience`, training stops once that many epochs brought no better validation accuracy.
    """
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if on_batch is not None:
                on_batch()

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log.epoch_seconds.append(time.perf_counter() - self._started)
            for key in HISTORY_KEYS:
                log.history[key].append(float(logs.get(key, math.nan)))
            if not math.isfinite(log.history["loss"][-1]):
                raise FloatingPointError(f"loss is {log.history['loss'][-1]} at epoch {epoch + 1}")
            if on_epoch is not None:
                on_epoch(epoch + 1, log)
            if patience_ran_out(log.history["val_accuracy"], patience):
                self.model.stop_training = True

    return EpochRecorder()


def fit_best_epoch(model, train_data, validate: Callable[[], tuple[float, float]], epochs: int, *,
                   steps_per_epoch: int | None = None,
                   on_epoch: Callable[[int, EpochLog], None] | None = None,
                   log: EpochLog | None = None, verbose: int = 0,
                   on_batch: Callable[[], None] | None = None, patience: int | None = None,
                   switch_after: int = 0, switch: Callable[[], None] | None = None) -> FitResult:
    """Train for `epochs`, then restore the weights of the epoch with the best validation accuracy.

    Args:
        train_data: training batches; an endless one (all batches the same shape, so the train
            step traces once) needs `steps_per_epoch`.
        validate: returns (validation accuracy, validation loss) of the model as it is now;
            called after each epoch (see `study.trial.inference.Predictor`).
        patience: stop early once this many epochs in a row brought no better validation
            accuracy (None: always train all `epochs`).
        on_epoch: called as on_epoch(epoch, log) after each epoch; may raise to stop training.
        log: where epochs are recorded (pass one to read it after an exception).
        on_batch: called after every training batch; may raise to stop training.
        switch_after, switch: after `switch_after` epochs, call `switch()` (a head warm-up's end:
            it unfreezes the base and compiles again) and train on to `epochs`.
    """
    log = log if log is not None else EpochLog()
    best = BestWeights()
    # The validation scores enter the epoch's logs first; `best` snapshots the weights before
    # `on_epoch` can act on the model.
    callbacks = [validation_callback(validate), best, make_epoch_callback(log, on_epoch, on_batch, patience)]
    started = time.perf_counter()
    first = switch_after if switch is not None and 0 < switch_after < epochs else epochs
    model.fit(train_data, epochs=first, steps_per_epoch=steps_per_epoch, verbose=verbose, shuffle=False,
              callbacks=callbacks)
    if first < epochs and not model.stop_training:
        switch()
        model.fit(train_data, initial_epoch=first, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  verbose=verbose, shuffle=False, callbacks=callbacks)
    best.restore()
    train_seconds = time.perf_counter() - started
    val_accuracy = log.history["val_accuracy"]
    best_index = max(range(len(val_accuracy)), key=lambda i: (val_accuracy[i], -i))  # the first best
    return FitResult(log.history, log.epoch_seconds, train_seconds, best_index + 1, val_accuracy[best_index])


def validation_callback(validate: Callable[[], tuple[float, float]]):
    """A Keras callback that adds `val_accuracy` and `val_loss` from `validate()` to each epoch's logs."""
    import keras

    class Validation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["val_accuracy"], logs["val_loss"] = validate()

    return Validation()


def BestWeights():
    """A callback that keeps the weights of the epoch with the best validation accuracy (the first
    of equals) across several `fit` calls; `restore()` puts them back."""
    import keras

    class Keeper(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_value = -math.inf
            self.saved: list | None = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_accuracy", -math.inf)
            if value > self.best_value:
                self.best_value = value
                # (variable, value) pairs: a base unfrozen between fits reorders trainable_weights
                self.saved = [(variable, variable.numpy()) for variable in self.model.weights]

        def restore(self) -> None:
            for variable, value in self.saved or ():
                variable.assign(value)

    return Keeper()
