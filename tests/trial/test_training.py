"""Fitting: the best epoch's weights come back, and a non-finite loss stops training."""

from __future__ import annotations

import numpy as np
import pytest

from study.config import SplitConfig
from study.data.images import load_splits, make_dataset
from study.trial.fit import EpochLog, fit_best_epoch


@pytest.fixture
def tiny_data(image_folder):
    return load_splits(image_folder, 32, SplitConfig(0.3, 0.3), seed=0)


def small_model():
    """A plain classifier that learns the colour-coded classes in one epoch."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(32, activation="relu", name="dense_1"),
        keras.layers.Dense(3, activation="softmax", name="classes"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_the_best_epoch_is_restored_not_the_last(tiny_data):
    model = small_model()

    def wreck_after_first_epoch(epoch, log):
        if epoch == 1:  # zero the head: later epochs cannot learn through dead ReLUs
            for name in ("dense_1", "classes"):
                layer = model.get_layer(name)
                layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])

    train = make_dataset(tiny_data.x["train"], tiny_data.y["train"], 8, shuffle=True)
    val = make_dataset(tiny_data.x["val"], tiny_data.y["val"], 8)
    result = fit_best_epoch(model, train, val, 3, on_epoch=wreck_after_first_epoch)
    accuracies = result.history["val_accuracy"]
    assert result.epochs_run == 3 and len(result.epoch_seconds) == 3
    assert accuracies[-1] < max(accuracies), "precondition: the last epoch is worse than the best"
    assert result.best_val_accuracy == max(accuracies)
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    _, restored = model.evaluate(val, verbose=0)
    assert restored == pytest.approx(max(accuracies), abs=1e-6)


def test_non_finite_loss_raises_and_keeps_the_epochs_seen(tiny_data):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Lambda(lambda x: x * np.inf),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    log = EpochLog()
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        fit_best_epoch(model, make_dataset(tiny_data.x["train"], tiny_data.y["train"], 64),
                       make_dataset(tiny_data.x["val"], tiny_data.y["val"], 8), 3, log=log)
    assert len(log.history["loss"]) == 1
