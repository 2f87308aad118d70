"""The training recipe: each key changes what it should, and early stopping keeps the best epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from study.config import SplitConfig
from study.data.images import load_splits, make_dataset
from study.trial.fit import fit_best_epoch
from study.trial.inference import Predictor
from study.trial.recipe import Recipe, learning_rate_factor, make_schedule


@pytest.fixture
def tiny_data(image_folder):
    return load_splits(image_folder, 32, SplitConfig(0.3, 0.3), seed=0)


def dense_model(recipe: Recipe, steps_per_epoch: int = 1, epochs: int = 1, learning_rate: float = 0.01):
    """A small classifier on 8 features, compiled for `recipe`, the same initial weights every call."""
    import keras

    from study.trial.model import compile_recipe

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    return compile_recipe(model, learning_rate, recipe, n_classes=3, steps_per_epoch=steps_per_epoch, epochs=epochs)


def features(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)


def test_the_learning_rate_warms_up_linearly_then_stays_or_decays_to_zero():
    factor = lambda step, **kw: learning_rate_factor(step, steps_per_epoch=10, epochs=10, **kw)  # noqa: E731
    assert [factor(s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert [factor(s, warmup_epochs=2) for s in (0, 9, 19, 20)] == [pytest.approx(0.05), pytest.approx(0.5), 1.0, 1.0]
    assert factor(0, cosine=True) == 1.0
    assert factor(50, cosine=True) == pytest.approx(0.5)
    assert factor(100, cosine=True) == pytest.approx(0.0)
    assert factor(20, warmup_epochs=2, cosine=True) == 1.0  # the decay starts after the warm-up
    assert factor(60, warmup_epochs=2, cosine=True) == pytest.approx(0.5)


def test_the_optimizer_follows_the_cosine_schedule_at_every_epoch_end():
    import keras

    x, y = features()
    steps, epochs, peak = 6, 4, 0.01  # batch 8: 6 steps an epoch
    model = dense_model(Recipe(lr_schedule="cosine", warmup_epochs=1), steps, epochs, peak)
    rates = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(model.optimizer.learning_rate)))
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[recorder])
    expected = [peak * learning_rate_factor((e + 1) * steps, steps_per_epoch=steps, epochs=epochs, warmup_epochs=1,
                                            cosine=True) for e in range(epochs)]
    assert rates == pytest.approx(expected, rel=1e-5)
    assert rates[0] > rates[1] > rates[2] > rates[3] == pytest.approx(0.0, abs=1e-9)


def test_label_smoothing_changes_the_loss_to_smoothed_targets():
    from study.trial.recipe import make_loss

    y_true = np.array([0, 2])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    plain = -np.log([0.7, 0.6])
    s = 0.3
    targets = np.full((2, 3), s / 3)
    targets[[0, 1], y_true] += 1 - s
    smoothed = -(targets * np.log(y_pred)).sum(axis=1)
    assert make_loss(3, 0.0) == "sparse_categorical_crossentropy"
    assert np.asarray(make_loss(3, s)(y_true, y_pred)) == pytest.approx(smoothed, rel=1e-5)
    assert not np.allclose(smoothed, plain)


def test_weight_decay_shrinks_the_weights():
    import keras

    x, y = features()
    norms = {}
    for decay in (0.0, 0.2):
        model = dense_model(Recipe(weight_decay=decay), learning_rate=0.001)
        assert isinstance(model.optimizer, keras.optimizers.AdamW if decay else keras.optimizers.Adam)
        assert isinstance(model.optimizer, keras.optimizers.AdamW) == bool(decay)
        model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        norms[decay] = sum(float(np.square(w).sum()) for w in model.get_weights())
    assert norms[0.2] < norms[0.0]


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_the_fused_adam_update_is_keras_adam(decay):
    """The trial's optimizer (one fused kernel per weight) moves every weight as Keras' Adam or
    AdamW does, step after step, with a schedule."""
    import keras

    from study.trial.recipe import make_optimizer

    x, y = features()
    recipe = Recipe(lr_schedule="cosine", warmup_epochs=1)
    weights = {}
    for fused in (True, False):
        model = dense_model(recipe, learning_rate=0.01)
        schedule = make_schedule(0.01, recipe, steps_per_epoch=3, epochs=4)
        if fused:
            optimizer = make_optimizer(schedule, decay)
            assert type(optimizer).__name__.startswith("Fused")
        else:
            optimizer = (keras.optimizers.AdamW(learning_rate=schedule, weight_decay=decay) if decay
                         else keras.optimizers.Adam(learning_rate=schedule))
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
        weights[fused] = model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(weights[True], dense_model(recipe, learning_rate=0.01).get_weights()))
    for fused_weight, keras_weight in zip(weights[True], weights[False]):
        np.testing.assert_allclose(fused_weight, keras_weight, rtol=1e-4, atol=1e-6)


def test_a_head_warm_up_trains_only_the_head_then_the_base(tiny_data):
    import keras

    from study.trial.model import base_of, build_model, unfreeze_base

    recipe = Recipe(head_warmup_epochs=1, finetune_lr_ratio=0.5)
    keras.utils.set_random_seed(0)
    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=8,
                        dropout=0.0, learning_rate=0.01, recipe=recipe, steps_per_epoch=2, epochs=2)
    conv = base_of(model).get_layer("conv1")
    head = [model.get_layer("dense_1"), model.get_layer("classes")]

    def weights():
        # an untrained frozen base feeds ~0 to the head, so its biases are what move
        return conv.get_weights()[0].copy(), np.concatenate([w.ravel() for layer in head for w in layer.get_weights()])

    snapshots = [weights()]
    switched = []

    def switch():
        switched.append(True)
        unfreeze_base(model, 13, 0.01, recipe, n_classes=3, steps_per_epoch=2, epochs=2)

    def snapshot(epoch, log):
        snapshots.append(weights())

    train = make_dataset(tiny_data.x["train"], tiny_data.y["train"], 8, shuffle=True)
    val = Predictor(model).scorer(tiny_data.x["val"], tiny_data.y["val"], 8)
    fit_best_epoch(model, train, val, 2, on_epoch=snapshot, switch_after=1, switch=switch)
    (base0, head0), (base1, head1), (base2, _) = snapshots
    assert switched == [True]
    assert np.array_equal(base0, base1), "the base changed during the head warm-up"
    assert not np.array_equal(head0, head1), "the head did not train during its warm-up"
    assert not np.array_equal(base1, base2), "the base did not train after the warm-up"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)  # the rate x finetune_lr_ratio


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    x, y = features(64)
    xv, yv = features(64, seed=1)
    yv = np.random.default_rng(2).integers(0, 3, len(yv)).astype(np.int32)  # noise: no steady progress
    model = dense_model(Recipe(), learning_rate=0.05)
    weights_by_epoch = []

    def keep(epoch, log):
        weights_by_epoch.append([w.copy() for w in model.get_weights()])

    result = fit_best_epoch(model, make_dataset(x, y, 8, shuffle=True), Predictor(model).scorer(xv, yv, 8), 40,
                            patience=2, on_epoch=keep)
    val = result.history["val_accuracy"]
    assert result.epochs_run < 40, "precondition: the curve stalls within 40 epochs"
    assert result.epochs_run == result.best_epoch + 2  # two epochs without a better one, then stop
    assert result.best_epoch == val.index(max(val)) + 1
    for restored, kept in zip(model.get_weights(), weights_by_epoch[result.best_epoch - 1]):
        assert np.array_equal(restored, kept)


def test_the_batch_size_sets_the_steps_of_an_epoch(tmp_path, image_folder):
    from study.trial.job import TrialJob, TrialTrainer
    from tests.trial.trial_setup import tiny_setup

    setup = tiny_setup(tmp_path, image_folder)
    steps = {}
    for batch in (4, 8):
        job = TrialJob(0, {"head_depth": 1, "dense_units": 8, "dropout": 0.0, "learning_rate": 0.01,
                           "batch_size": batch}, seed=0)
        train, steps[batch], _, _ = TrialTrainer()._datasets(setup, job)
        assert all(len(labels) == batch for _, labels in train.take(3 * steps[batch]))
    n_train = len(np.load(f"{setup.images_dir}/train_y.npy"))
    assert steps == {4: math.ceil(n_train / 4), 8: math.ceil(n_train / 8)}
