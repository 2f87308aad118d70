"""The batches the jax and torch backends train on: every example once per pass, one batch shape."""

from __future__ import annotations

import numpy as np

from study.data.array_batches import ArrayBatches


def examples(n: int = 10):
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=1)
    return images, np.arange(n) % 3


def test_endless_batches_have_one_shape_and_show_every_example_once_per_pass():
    images, labels = examples(10)
    batches = ArrayBatches(images, labels, 4, shuffle=True, seed=3, endless=True)
    assert batches.num_batches is None
    seen = []
    for index in range(10):  # 40 examples: four whole passes over 10
        x, y = batches[index]
        assert x.shape == (4, 2, 1, 1) and x.dtype == np.uint8
        assert (labels[x[:, 0, 0, 0]] == y).all()  # labels travel with their images
        seen.extend(x[:, 0, 0, 0].tolist())
    passes = [sorted(seen[start:start + 10]) for start in range(0, 40, 10)]
    assert all(p == list(range(10)) for p in passes)
    assert seen[:10] != seen[10:20]  # each pass is reshuffled
    again = ArrayBatches(images, labels, 4, shuffle=True, seed=3, endless=True)
    assert np.array_equal(again[7][0], batches[7][0])  # a batch depends on its index and the seed only


def test_finite_batches_cover_the_split_in_order_with_a_short_last_batch():
    images, labels = examples(10)
    batches = ArrayBatches(images, labels, 4)
    assert batches.num_batches == 3
    assert [len(batches[i][1]) for i in range(3)] == [4, 4, 2]
    assert np.concatenate([batches[i][0][:, 0, 0, 0] for i in range(3)]).tolist() == list(range(10))


def test_an_augmenter_turns_the_batch_into_floats_of_the_same_shape():
    import keras

    images, labels = examples(6)
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    x, _ = ArrayBatches(images, labels, 3, augmenter=flip)[0]
    assert x.dtype == np.float32 and x.shape == (3, 2, 1, 1)


def test_under_jax_the_augmentation_layers_compile_with_xla(monkeypatch):
    import keras

    from study.config import AugmentConfig
    from study.data.images import make_augmenter

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    augmenter = make_augmenter(AugmentConfig(), seed=0)
    assert [layer.supports_jit for layer in augmenter.layers] == [True, True, True]
