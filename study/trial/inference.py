"""One traced inference function per model: validation, test scores, kept predictions and latency.

Keras traces a separate graph for `evaluate`, for `predict`, and again for every new batch
shape (a split's last, partial batch). A trial used to pay for four or five such traces; a
`Predictor` traces one function whose batch dimension is left open, so every split, every
batch size and the latency's single images go through that one graph.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

LATENCY_WARMUP = 5
LATENCY_REPEATS = 30


class Predictor:
    """`model(x, training=False)` traced once for inputs of the model's shape and any batch size.

    The trace holds the model's variables, not copies: weights restored or trained later are
    the ones it uses. Under jax and torch, Keras' own `predict_on_batch` (compiled once per
    batch shape under jax) takes the batches as they are stored, uint8 images included, and
    the model casts them on its device; a split's last batch is padded to the full size so it
    reuses the compiled shape.
    """

    def __init__(self, model):
        import keras

        self.input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        self.pads_batches = keras.backend.backend() != "tensorflow"
        if self.pads_batches:
            self._call = model.predict_on_batch
            return
        import tensorflow as tf

        spec = tf.TensorSpec((None,) + self.input_shape, tf.float32)
        function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self._call = lambda batch: function(np.asarray(batch, dtype=np.float32))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (float32) of one batch."""
        return np.asarray(self._call(np.asarray(batch)), dtype=np.float32)

    def probabilities(self, inputs: np.ndarray, batch_size: int) -> np.ndarray:
        """Class probabilities of every row of `inputs` (images as uint8, or cached features),
        one batch at a time so a memory-mapped split is never copied whole."""
        batches = []
        for start in range(0, len(inputs), batch_size):
            batch = np.asarray(inputs[start:start + batch_size])
            rows = len(batch)
            if self.pads_batches and rows < batch_size:
                batch = np.concatenate([batch, np.zeros((batch_size - rows,) + batch.shape[1:], batch.dtype)])
            batches.append(self(batch)[:rows])
        return np.concatenate(batches) if batches else np.zeros((0, 0), np.float32)

    def scorer(self, inputs: np.ndarray, labels: np.ndarray, batch_size: int):
        """A function of no arguments giving (accuracy, loss) on `inputs` now: `fit_best_epoch`'s `validate`."""
        return lambda: accuracy_and_loss(self.probabilities(inputs, batch_size), labels)

    def latency_ms(self, warmup: int = LATENCY_WARMUP, repeats: int = LATENCY_REPEATS) -> float:
        """Median wall time of one batch-1 call, in milliseconds, after `warmup` calls."""
        image = np.random.default_rng(0).uniform(0, 255, (1,) + self.input_shape).astype(np.float32)
        for _ in range(warmup):
            self(image)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            self(image)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)


def accuracy_and_loss(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of class probabilities against integer labels."""
    labels = np.asarray(labels).astype(int).reshape(-1)
    if len(labels) == 0:
        return float("nan"), float("nan")
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return accuracy, float(-np.mean(np.log(picked)))
