"""MobileNet + head: shapes, parameter counts, modes, and weights that cannot be had."""

from __future__ import annotations

import pytest

from study.errors import WeightsError
from study.trial.model import build_model, check_weights, count_params, imagenet_weights_filename, resolve_weights
from tests.conftest import SHARED_WEIGHTS

BASE_PARAMS_ALPHA_025 = 218_544  # the ImageNet file holds 218,544 values
BASE_BATCHNORM_MOVING = 5_472  # moving means and variances: never trainable


def head_params(features: int, units: int, depth: int, classes: int) -> int:
    sizes = [features] + [units] * depth
    hidden = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return hidden + (units + 1) * classes


def tiny_model(**overrides):
    settings = dict(n_classes=10, image_size=32, alpha=0.25, weights=None, head_depth=3,
                    dense_units=1024, dropout=0.5, learning_rate=1e-3)
    settings.update(overrides)
    return build_model(**settings)


def test_head_is_flatten_then_dense_dropout_pairs_then_softmax():
    model = tiny_model()
    names = [layer.name for layer in model.layers]
    assert names[3:] == ["flatten", "dense_1", "dropout_1", "dense_2", "dropout_2",
                         "dense_3", "dropout_3", "classes"]
    assert model.get_layer("dropout_2").rate == 0.5
    assert model.get_layer("dense_1").units == 1024
    assert model.output_shape == (None, 10)
    assert model.get_layer("classes").activation.__name__ == "softmax"


def test_parameter_count_of_alpha_025_at_32px_with_three_1024_layers():
    # At 32 px MobileNet alpha 0.25 ends in a 1x1x256 map, so Flatten gives 256 features.
    trainable, total = count_params(tiny_model())
    expected_total = BASE_PARAMS_ALPHA_025 + head_params(256, 1024, 3, 10)
    assert total == expected_total == 2_591_162
    assert trainable == expected_total - BASE_BATCHNORM_MOVING


def test_frozen_mode_trains_the_head_only():
    trainable, total = count_params(tiny_model(mode="frozen", head_depth=2, dense_units=64))
    assert trainable == head_params(256, 64, 2, 10)
    assert total == BASE_PARAMS_ALPHA_025 + trainable


def test_adam_with_the_requested_learning_rate():
    model = tiny_model(learning_rate=2e-4, head_depth=1, dense_units=8)
    import keras

    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert not isinstance(model.optimizer, keras.optimizers.AdamW)
    assert float(model.optimizer.learning_rate) == pytest.approx(2e-4)


def test_imagenet_file_names_follow_keras():
    assert imagenet_weights_filename(1.0, 224) == "mobilenet_1_0_224_tf_no_top.h5"
    assert imagenet_weights_filename(0.25, 128) == "mobilenet_2_5_128_tf_no_top.h5"
    assert imagenet_weights_filename(0.5, 96) == "mobilenet_5_0_224_tf_no_top.h5"


def test_imagenet_offline_names_the_file_and_both_remedies(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_internet(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.setattr(keras.utils, "get_file", no_internet)
    with pytest.raises(WeightsError) as error:
        resolve_weights("imagenet", 1.0, 224)
    message = str(error.value)
    assert "mobilenet_1_0_224_tf_no_top.h5" in message
    assert f"{tmp_path}/models" in message and "--weights PATH" in message


def test_imagenet_from_keras_cache_needs_no_download(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mobilenet_2_5_128_tf_no_top.h5").write_bytes(b"cached")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert resolve_weights("imagenet", 0.25, 128) == "imagenet"


def test_missing_and_non_hdf5_weight_files_are_named(tmp_path):
    with pytest.raises(WeightsError, match="'.*nowhere.h5' does not exist"):
        resolve_weights(str(tmp_path / "nowhere.h5"), 0.25, 32)
    fake = tmp_path / "fake.h5"
    fake.write_text("not weights")
    with pytest.raises(WeightsError, match="is not an HDF5"):
        resolve_weights(str(fake), 0.25, 32)
    assert resolve_weights("none", 0.25, 32) is None


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="shared MobileNet alpha 0.25 weights absent")
def test_shared_imagenet_weights_load_at_other_sizes():
    import numpy as np

    resolved = check_weights(str(SHARED_WEIGHTS), 0.25, 96)
    model = tiny_model(image_size=96, weights=resolved, head_depth=1, dense_units=8)
    kernel = model.get_layer("mobilenet_0.25_96").get_layer("conv1").kernel.numpy()
    assert kernel.shape == (3, 3, 3, 8)
    assert abs(float(np.abs(kernel).mean()) - 0.0) > 1e-3  # loaded, not zeros
    untrained = tiny_model(image_size=96, head_depth=1, dense_units=8)
    assert not np.allclose(kernel, untrained.get_layer("mobilenet_0.25_96").get_layer("conv1").kernel.numpy())


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="shared MobileNet alpha 0.25 weights absent")
def test_weights_for_another_alpha_are_refused_in_one_line():
    with pytest.raises(WeightsError, match="do not fit MobileNet alpha=0.5") as error:
        check_weights(str(SHARED_WEIGHTS), 0.5, 96)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("pooling, layer", [("avg", "avg_pool"), ("max", "max_pool"), ("flatten", "flatten")])
def test_pooling_choice_sets_what_feeds_the_head(pooling, layer):
    model = build_model(n_classes=3, image_size=64, alpha=0.25, weights=None, head_depth=1, dense_units=8,
                        dropout=0.5, learning_rate=1e-3, pooling=pooling)
    assert model.get_layer(layer)
    # at 64 px the base's map is 2 x 2 x 256: flatten feeds 1024 values, global pooling 256
    assert model.get_layer("dense_1").kernel.shape[0] == (1024 if pooling == "flatten" else 256)


@pytest.mark.parametrize("blocks", [0, 2, 13])
def test_unfreeze_blocks_trains_only_the_top_blocks(blocks):
    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=0, dense_units=8,
                        dropout=0.0, learning_rate=1e-3, unfreeze_blocks=blocks)
    base = model.get_layer("mobilenet_0.25_32")
    trained = {w.path.split("/")[0] for w in base.trainable_weights}
    expected = {name for b in range(14 - blocks, 14) for name in
                (f"conv_dw_{b}", f"conv_dw_{b}_bn", f"conv_pw_{b}", f"conv_pw_{b}_bn")}
    if blocks == 13:
        expected |= {"conv1", "conv1_bn"}  # the whole base, its first convolution included
    assert trained == expected


def test_a_weights_folder_gives_each_alpha_its_file(tmp_path):
    from study.trial.model import HDF5_SIGNATURE, resolve_weights

    for name in ("mobilenet_2_5_224_tf_no_top.h5", "mobilenet_5_0_128_tf_no_top.h5", "mobilenet_5_0_224_tf_no_top.h5"):
        (tmp_path / name).write_bytes(HDF5_SIGNATURE + b"rest")
    assert resolve_weights(str(tmp_path), 0.25, 160) == str(tmp_path / "mobilenet_2_5_224_tf_no_top.h5")
    assert resolve_weights(str(tmp_path), 0.5, 128) == str(tmp_path / "mobilenet_5_0_128_tf_no_top.h5")
    assert resolve_weights(str(tmp_path), 0.5, 96) == str(tmp_path / "mobilenet_5_0_224_tf_no_top.h5")
    with pytest.raises(WeightsError) as error:
        resolve_weights(str(tmp_path), 1.0, 224)
    assert str(error.value) == (f"weights folder '{tmp_path}' has no MobileNet alpha=1.0 file "
                                "(expected mobilenet_1_0_224_tf_no_top.h5, as Keras names them)")
