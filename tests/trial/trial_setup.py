"""A run's shared settings for trial tests: tiny images decoded into the array cache, weights=None."""

from __future__ import annotations

from pathlib import Path

from study.config import AugmentConfig, SplitConfig, TrainConfig
from study.data.array_cache import write_image_cache
from study.data.images import load_splits
from study.trial.job import RunSetup


def tiny_setup(tmp_path: Path, image_folder: Path, **train) -> RunSetup:
    split = SplitConfig(0.3, 0.3)
    data = load_splits(image_folder, 32, split, seed=0)
    folder = write_image_cache(data, split, 32, tmp_path / "image-cache")
    settings = dict(epochs=2, batch_size=8, image_size=32, alpha=0.25, weights="none",
                    augment=AugmentConfig(enabled=False))
    return RunSetup(train=TrainConfig(**{**settings, **train}), class_names=tuple(data.class_names),
                    images_dir=str(folder), data_root=str(data.root), data_fingerprint=data.fingerprint,
                    split_seed=data.seed, feature_cache_root=str(tmp_path / "feature-cache"))
