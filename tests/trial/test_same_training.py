"""A trial trains the same model to the same accuracy as the plain Keras path it replaced.

The trial path traces less (fixed-shape endless batches, optimizer built up front, fused Adam,
one inference function for validation), so its random batches differ from a plain
`fit(validation_data=...)` after the first pass; on a fixed seed both curves must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from study.data.images import make_dataset
from study.trial.fit import EpochLog
from study.trial.job import TrialHooks, TrialJob, TrialTrainer

EPOCHS = 12
# Allowed gap between the two bests, and between the curves on average over the epochs: about
# three validation images of the 32 here. Single epochs on the steep part may differ more.
CURVE_TOLERANCE = 0.1


@pytest.mark.slow
def test_a_trial_learns_as_plain_keras_fit_did(tmp_path):
    import keras

    from study.demo import write_demo_images
    from study.trial.model import build_model
    from tests.trial.trial_setup import tiny_setup

    images = write_demo_images(tmp_path / "images", per_class=40, size=32)
    setup = tiny_setup(tmp_path, images, epochs=EPOCHS, batch_size=16)
    params = {"head_depth": 2, "dense_units": 64, "dropout": 0.5, "learning_rate": 1e-2}
    result = TrialTrainer().run(setup, TrialJob(0, params, seed=7), TrialHooks(), EpochLog())
    new_curve = np.array(result.history["val_accuracy"])

    # The plain path: Keras' Adam, partial last batches, Keras' own validation, TensorFlow's
    # graph rewrites (a trial skips them on a CPU).
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    x, y = TrialTrainer().arrays(setup.images_dir)
    model = build_model(n_classes=4, image_size=32, alpha=0.25, weights=None, **params)
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(make_dataset(x["train"], y["train"], 16, shuffle=True, seed=7), epochs=EPOCHS,
                        validation_data=make_dataset(x["val"], y["val"], 16), verbose=0, shuffle=False)
    old_curve = np.array(history.history["val_accuracy"])

    assert old_curve.max() >= 0.6, f"precondition: the plain path learns ({old_curve}, new {new_curve})"
    assert abs(new_curve.max() - old_curve.max()) <= CURVE_TOLERANCE, (new_curve, old_curve)
    assert np.abs(new_curve - old_curve).mean() <= CURVE_TOLERANCE, (new_curve, old_curve)
