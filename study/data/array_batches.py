"""Batches of decoded arrays for the jax and torch backends, without TensorFlow.

A `keras.utils.PyDataset` over the (memory-mapped) arrays: batches leave the host as they are
stored, uint8 images or float32 features, and the model turns them into floats on its device.
`endless` gives the same stream as the tf.data pipeline's: passes over the examples, each
reshuffled, in batches of exactly `batch_size` that run across pass boundaries, so a
compiled train step sees one batch shape. Batch `i` is a pure function of `i` and the seed.
"""

from __future__ import annotations

import numpy as np

import keras


class ArrayBatches(keras.utils.PyDataset):
    """(x, y) batches of `images` and `labels`; `augmenter` (Keras random layers), when given,
    is applied to each batch on the host as float32."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, endless: bool = False, augmenter=None):
        super().__init__()
        self.images, self.labels = images, np.asarray(labels)
        self.batch_size, self.shuffle, self.seed, self.endless = batch_size, shuffle, seed, endless
        self.augmenter = augmenter
        self._epoch = 0
        self._order = self._permutation(0)

    @property
    def num_batches(self) -> int | None:
        return None if self.endless else -(-len(self.labels) // self.batch_size)

    def _permutation(self, number: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.labels))
        return np.random.default_rng([self.seed, number]).permutation(len(self.labels))

    def indices(self, index: int) -> np.ndarray:
        """Positions in the arrays of batch `index`."""
        n = len(self.labels)
        if not self.endless:
            return self._order[index * self.batch_size:(index + 1) * self.batch_size]
        start = index * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        passes, within = np.divmod(positions, n)
        out = np.empty(self.batch_size, dtype=np.int64)
        for number in np.unique(passes):
            chosen = passes == number
            out[chosen] = self._permutation(int(number))[within[chosen]]
        return out

    def __getitem__(self, index: int):
        chosen = self.indices(index)
        # a memory map reads fastest in order; the batch keeps the shuffled order
        order = np.argsort(chosen, kind="stable")
        x = np.empty((len(chosen),) + self.images.shape[1:], dtype=self.images.dtype)
        x[order] = self.images[chosen[order]]
        y = self.labels[chosen]
        if self.augmenter is not None:
            x = keras.ops.convert_to_numpy(self.augmenter(x.astype(np.float32), training=True))
        return x, y

    def on_epoch_end(self) -> None:
        self._epoch += 1
        if not self.endless:
            self._order = self._permutation(self._epoch)
