"""Fitting: the best epoch's weights come back, and a non-finite loss stops training."""

from __future__ import annotations

import numpy as np
import pytest

from study.config import SplitConfig
from study.data.images import load_splits, make_dataset
from study.trial.fit import EpochLog, fit_best_epoch
from study.trial.inference import Predictor


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
    val = Predictor(model).scorer(tiny_data.x["val"], tiny_data.y["val"], 8)
    result = fit_best_epoch(model, train, val, 3, on_epoch=wreck_after_first_epoch)
    accuracies = result.history["val_accuracy"]
    assert result.epochs_run == 3 and len(result.epoch_seconds) == 3
    assert accuracies[-1] < max(accuracies), "precondition: the last epoch is worse than the best"
    assert result.best_val_accuracy == max(accuracies)
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    restored, _ = val()
    assert restored == pytest.approx(max(accuracies), abs=1e-6)


def test_non_finite_loss_raises_and_keeps_the_epochs_seen(tiny_data):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Lambda(lambda x: x * np.inf),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    log = EpochLog()
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        fit_best_epoch(model, make_dataset(tiny_data.x["train"], tiny_data.y["train"], 64),
                       Predictor(model).scorer(tiny_data.x["val"], tiny_data.y["val"], 8), 3, log=log)
    assert len(log.history["loss"]) == 1


def count_train_step_traces(model) -> list:
    """Wrap `model.train_step`: the returned list grows by one each time TensorFlow traces it."""
    traces, train_step = [], model.train_step

    def counted(data):
        traces.append(1)
        return train_step(data)

    model.train_step = counted
    return traces


def test_the_train_step_traces_once_whatever_the_split_size(tiny_data):
    """A trial's model (optimizer and metrics built up front) on endless fixed-shape batches:
    12 training images in batches of 5 would otherwise trace a partial batch too, and the
    variables Keras creates lazily would make TensorFlow trace the first call twice."""
    from study.data.images import steps_per_epoch
    from study.trial.model import build_model

    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=8,
                        dropout=0.5, learning_rate=1e-3)
    traces = count_train_step_traces(model)
    x, y = tiny_data.x, tiny_data.y
    assert len(y["train"]) % 5 != 0
    train = make_dataset(x["train"], y["train"], 5, shuffle=True, endless=True)
    result = fit_best_epoch(model, train, Predictor(model).scorer(x["val"], y["val"], 5), 3,
                            steps_per_epoch=steps_per_epoch(len(y["train"]), 5))
    assert result.epochs_run == 3
    assert len(traces) == 1


def test_endless_batches_show_every_example_once_per_pass():
    images = np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1)
    dataset = make_dataset(images, np.arange(7), 3, shuffle=True, endless=True)
    batches = [labels.numpy() for _, labels in dataset.take(7)]  # 21 examples: three passes
    assert all(len(batch) == 3 for batch in batches)
    seen = np.concatenate(batches)
    for start in (0, 7, 14):
        assert sorted(seen[start:start + 7]) == list(range(7))
    assert not all((seen[0:7] == seen[7:14]))  # reshuffled each pass
