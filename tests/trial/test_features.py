"""Cached base features: keys, invalidation, agreement with the base, and the cached/two-stage modes."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from study.config import AugmentConfig, SplitConfig
from study.data.images import load_splits
from study.trial.features import cache_key, cached_features, weights_identity
from study.trial.model import build_base
from tests.commands import study_cli
from tests.conftest import SHARED_WEIGHTS, SMALL_SPACE, write_class_images

KEY_ARGS = dict(data_fingerprint="abc", split_counts={"train": 10, "val": 2, "test": 2}, split_seed=0,
                alpha=0.25, image_size=32, weights_id="imagenet", augment_copies=0, augment=AugmentConfig())


def test_cache_key_changes_with_every_input_and_only_then():
    key, _ = cache_key(**KEY_ARGS)
    assert cache_key(**KEY_ARGS)[0] == key
    for name, value in [("data_fingerprint", "abd"), ("split_seed", 1), ("alpha", 0.5), ("image_size", 64),
                        ("weights_id", "file-sha256-1"), ("augment_copies", 2),
                        ("split_counts", {"train": 9, "val": 3, "test": 2})]:
        assert cache_key(**{**KEY_ARGS, name: value})[0] != key, name
    # Augmentation settings only matter when augmented copies are cached.
    assert cache_key(**{**KEY_ARGS, "augment": AugmentConfig(rotation=0.3)})[0] == key


def test_weights_identity_hashes_files(tmp_path):
    (tmp_path / "a.h5").write_bytes(b"one")
    (tmp_path / "b.h5").write_bytes(b"two")
    assert weights_identity(str(tmp_path / "a.h5"), 0) != weights_identity(str(tmp_path / "b.h5"), 0)
    assert weights_identity(None, 1) != weights_identity(None, 2)


@pytest.fixture
def tiny_splits(image_folder):
    return load_splits(image_folder, 32, SplitConfig(0.3, 0.3), seed=0)


def test_cached_features_match_the_base_and_are_reused(tiny_splits, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    base = build_base(32, 0.25, None)
    first = cached_features(tiny_splits, base, tmp_path, "random-init-seed-0", alpha=0.25, image_size=32)
    assert first.computed and first.feature_shape == (1, 1, 256)
    direct = base(tiny_splits.x["val"].astype(np.float32) / 127.5 - 1.0, training=False).numpy()
    np.testing.assert_allclose(first.x["val"], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first.y["train"], tiny_splits.y["train"])
    again = cached_features(tiny_splits, base, tmp_path, "random-init-seed-0", alpha=0.25, image_size=32)
    assert not again.computed and again.folder == first.folder
    assert isinstance(again.x["train"], np.memmap)
    other = cached_features(tiny_splits, base, tmp_path, "random-init-seed-1", alpha=0.25, image_size=32)
    assert other.computed and other.folder != first.folder


def test_augmented_copies_are_added_to_training_only(tiny_splits, tmp_path):
    base = build_base(32, 0.25, None)
    features = cached_features(tiny_splits, base, tmp_path, "w", alpha=0.25, image_size=32, augment_copies=2,
                               augment=AugmentConfig(rotation=0.2, zoom=0.2))
    n_train = len(tiny_splits.y["train"])
    assert features.x["train"].shape[0] == 3 * n_train
    assert len(features.y["val"]) == len(tiny_splits.y["val"])
    # An untrained base outputs values near 1e-17, so compare relatively.
    assert not np.allclose(features.x["train"][:n_train], features.x["train"][n_train:2 * n_train], rtol=1e-3, atol=0)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="shared MobileNet alpha 0.25 weights absent")
def test_two_stage_records_both_stages_and_hyperband_prunes_in_cached_mode(tmp_path):
    write_class_images(tmp_path / "images", {"a": 12, "b": 12, "c": 12})
    (tmp_path / "small.toml").write_text(SMALL_SPACE)
    result = study_cli("run", "--data", "images", "--space", "small.toml", "--mode", "two-stage", "--n-trials", "12",
                       "--weights", str(SHARED_WEIGHTS), "--alpha", "0.25", "--image-size", "32", "--epochs", "9",
                       "--batch-size", "8", "--no-augment", "--pruner", "hyperband", "--stage2-top", "2",
                       "--unfreeze-blocks", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "features: computed" in result.stdout
    storage = f"sqlite:///{tmp_path}/study.db"
    stage1 = optuna.load_study(study_name="images", storage=storage).trials
    stage2 = optuna.load_study(study_name="images-stage2", storage=storage).trials
    assert len(stage2) == 2 and all(t.state == TrialState.COMPLETE for t in stage2)
    best_two = sorted((t for t in stage1 if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))[:2]
    assert sorted(t.user_attrs["stage1_trial"] for t in stage2) == sorted(t.number for t in best_two)
    assert all("head_only_val_accuracy" in t.user_attrs for t in stage2)
    pruned = [t for t in stage1 if t.state == TrialState.PRUNED]
    assert pruned, "hyperband pruned nothing"
    assert all(t.user_attrs["epochs_run"] == max(t.intermediate_values) < 9 for t in pruned)
    assert (tmp_path / "images-stage2.best.keras").is_file()
    again = study_cli("run", "--data", "images", "--space", "small.toml", "--mode", "two-stage", "--n-trials", "12",
                      "--weights", str(SHARED_WEIGHTS), "--alpha", "0.25", "--image-size", "32", "--epochs", "9",
                      "--batch-size", "8", "--no-augment", "--pruner", "hyperband", "--stage2-top", "2",
                      "--unfreeze-blocks", "1", cwd=tmp_path)
    assert "features: read" in again.stdout and "fine-tuning 0 head(s)" in again.stdout
    report = study_cli("report", "--study-name", "images", "--out", "reports", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-1500:]
    assert "## Stage 2: the best heads fine-tuned" in (tmp_path / "reports" / "images" / "README.md").read_text()
