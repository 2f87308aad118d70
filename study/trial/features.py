"""Cached base features: MobileNet's output computed once per data set and setting, kept on disk.

With the base frozen, every head trial would push the same images through the same network.
`cached_features` does that once per (data fingerprint, split, alpha, image size, weights,
augmented copies) and stores the outputs as .npy files beside the storage; later runs and
trials memory-map them. Any change of those keys gives a new cache folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.config import AugmentConfig
from study.data.array_cache import read_split_arrays, write_split_arrays
from study.data.images import DataSplits, make_augmenter


@dataclass
class FeatureSet:
    """Base outputs per split (memory-mapped float32 arrays) with their labels."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    key: str
    folder: Path
    computed: bool  # False when read from the cache

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.x["train"].shape[1:])


def weights_identity(resolved_weights: str | None, seed: int) -> str:
    """What identifies the base's weights: a file's hash, `imagenet`, or the seed of a random init."""
    if resolved_weights is None:
        return f"random-init-seed-{seed}"
    if resolved_weights == "imagenet":
        return "imagenet"
    digest = hashlib.sha256(Path(resolved_weights).read_bytes()).hexdigest()
    return f"file-sha256-{digest[:16]}"


def cache_key(data_fingerprint: str, split_counts: dict, split_seed: int, alpha: float, image_size: int,
              weights_id: str, augment_copies: int, augment: AugmentConfig) -> tuple[str, dict]:
    """A short key and the full record of everything the cached features depend on."""
    record = {
        "data_fingerprint": data_fingerprint, "split_counts": split_counts, "split_seed": split_seed,
        "alpha": alpha, "image_size": image_size, "weights": weights_id, "augment_copies": augment_copies,
        "augment": [augment.flip, augment.rotation, augment.zoom] if augment_copies else None,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16], record


def base_outputs(base, images: np.ndarray, batch_size: int = 64, augmenter=None) -> np.ndarray:
    """The frozen base's output for uint8 images, rescaled to [-1, 1] as the full model does."""
    import keras

    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], dtype=np.float32)
        if augmenter is not None:
            batch = augmenter(batch, training=True)
        outputs.append(keras.ops.convert_to_numpy(base(batch / 127.5 - 1.0, training=False)))
    return np.concatenate(outputs).astype(np.float32)


def cached_features(data: DataSplits, base, cache_root: Path, weights_id: str, *, alpha: float,
                    image_size: int, augment_copies: int = 0, augment: AugmentConfig | None = None,
                    seed: int = 0) -> FeatureSet:
    """Read the features of `data` from the cache, computing and storing them first if absent.

    `augment_copies` adds that many augmented passes over the training images (computed once)
    to the training features; validation and test features are never augmented.
    """
    augment = augment or AugmentConfig()
    key, record = cache_key(data.fingerprint, data.counts(), data.seed, alpha, image_size, weights_id,
                            augment_copies, augment)

    def split_features(split: str) -> tuple[np.ndarray, np.ndarray]:
        features = base_outputs(base, data.x[split])
        labels = data.y[split]
        if split == "train" and augment_copies:
            copies = [features]
            for copy in range(augment_copies):
                augmenter = make_augmenter(AugmentConfig(True, augment.flip, augment.rotation, augment.zoom),
                                           seed + 100 * (copy + 1))
                copies.append(base_outputs(base, data.x[split], augmenter=augmenter))
            features = np.concatenate(copies)
            labels = np.tile(labels, augment_copies + 1)
        return features, labels

    folder, computed = write_split_arrays(cache_root, key, record, split_features)
    x, y = read_split_arrays(folder)
    return FeatureSet(x, y, key, folder, computed)
