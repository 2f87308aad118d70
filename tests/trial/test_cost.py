"""Cost numbers of small models whose parameters and multiply-adds are counted by hand."""

import keras
import pytest

from study.trial.cost import inference_copy, measure_cost, multiply_adds, parameter_counts
from study.trial.model import build_model


def tiny_net():
    """conv 3x3 (3->4) -> depthwise 3x3 (x2) -> flatten -> dense 5, on 8x8 RGB; a nested 'base'."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    base = keras.Model(inputs, x, name="base")
    outer_in = keras.Input((8, 8, 3))
    y = keras.layers.Flatten()(base(outer_in))
    y = keras.layers.Dense(5)(y)
    return keras.Model(outer_in, y)


def test_multiply_adds_of_a_tiny_net_by_hand():
    conv = 8 * 8 * 3 * 3 * 3 * 4  # output pixels x kernel x in channels x out channels
    depthwise = 8 * 8 * 3 * 3 * 4 * 2  # output pixels x kernel x in channels x multiplier
    dense = (8 * 8 * 8) * 5
    assert multiply_adds(tiny_net()) == conv + depthwise + dense == 14080


def test_parameter_split_matches_keras_count():
    model = tiny_net()
    base, head, total = parameter_counts(model, base_prefix="base")
    assert total == model.count_params()
    assert base == (3 * 3 * 3 * 4 + 4) + (3 * 3 * 4 * 2 + 8)
    assert head == 8 * 8 * 8 * 5 + 5


@pytest.mark.parametrize("pooling", ["flatten", "avg"])
def test_cost_of_a_mobilenet_with_its_head(pooling):
    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=16,
                        dropout=0.5, learning_rate=1e-3, pooling=pooling)
    cost = measure_cost(inference_copy(model))
    assert cost["params_total"] == model.count_params()
    features = 256 if pooling == "avg" else 256  # 1x1x256 at 32 px: both give 256 values
    assert cost["params_head"] == features * 16 + 16 + 16 * 3 + 3
    assert cost["params_base"] == model.get_layer("mobilenet_0.25_32").count_params()
    # MobileNet alpha 0.25 at 32 px: the first conv alone is 16x16 px x 3x3x3 x 8 channels.
    assert cost["macs"] > 16 * 16 * 27 * 8 + features * 16
    assert cost["model_bytes"] > 4 * cost["params_total"]
    assert 0 < cost["latency_ms"] < 1000


def test_a_cached_head_with_its_base_counts_the_nested_head_as_head():
    from study.trial.model import build_head, with_base

    head = build_head(feature_shape=(1, 1, 256), n_classes=4, head_depth=0, dense_units=8, dropout=0.0,
                      learning_rate=1e-3, pooling="avg")
    model = with_base(head, image_size=32, alpha=0.25, weights=None, learning_rate=1e-3)
    base, head_params, total = parameter_counts(model)
    assert head_params == 256 * 4 + 4 and base + head_params == total == model.count_params()
    assert multiply_adds(model) == multiply_adds(model.get_layer("mobilenet_0.25_32")) + 256 * 4


def test_mobilenet_multiply_adds_match_its_paper():
    # Howard et al. 2017, table 8: MobileNet 1.0-224 has 569 M multiply-adds, 1.024 M of them
    # in the 1024 -> 1000 classifier that include_top=False leaves out.
    from study.trial.model import build_base

    base = build_base(224, 1.0, None)
    assert abs(multiply_adds(base) - (569e6 - 1.024e6)) < 0.01 * 569e6


def test_the_dashboard_note_of_a_trial_gives_its_cost():
    from study.search.trial_notes import trial_note

    cost = {"params_base": 1_000_000, "params_head": 500_000, "params_total": 1_500_000, "macs": 41_000_000,
            "model_bytes": 3 << 20, "latency_ms": 2.25}
    note = trial_note(3, {"pooling": "avg"}, "COMPLETE", {"val_accuracy": [0.5, 0.6]}, 2, 0.55, cost)
    assert ("- cost: 1.5 M parameters (1 M base + 500 k head), 41 M multiply-adds, 3 MiB saved, "
            "2.2 ms batch-1 latency") in note
    assert "cost" not in trial_note(3, {}, "PRUNED", {"val_accuracy": [0.5]}, None, None)


def test_saved_size_leaves_out_the_optimizer_state_of_a_trained_model():
    import numpy as np

    from study.trial.cost import saved_bytes

    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=64,
                        dropout=0.0, learning_rate=1e-3)
    before = saved_bytes(inference_copy(model))
    model.fit(np.zeros((4, 32, 32, 3), "float32"), np.zeros(4, "int32"), epochs=1, verbose=0)
    assert model.optimizer.built
    with_adam = plain_save_bytes(model)
    assert with_adam > 2 * before  # Adam keeps two values per trainable weight: Keras saves them too
    assert abs(saved_bytes(inference_copy(model)) - before) < 0.02 * before


def test_saved_size_of_a_cached_head_on_its_base_leaves_out_the_heads_optimizer():
    import numpy as np

    from study.trial.cost import saved_bytes
    from study.trial.model import build_head, with_base

    head = build_head(feature_shape=(1, 1, 256), n_classes=3, head_depth=2, dense_units=512, dropout=0.0,
                      learning_rate=1e-3)
    head.fit(np.zeros((4, 1, 1, 256), "float32"), np.zeros(4, "int32"), epochs=1, verbose=0)
    model = with_base(head, image_size=32, alpha=0.25, weights=None, learning_rate=1e-3)
    weights_bytes = 4 * model.count_params()
    assert plain_save_bytes(model) > weights_bytes + 2 * 4 * head.count_params()  # the head's Adam state
    assert weights_bytes < saved_bytes(inference_copy(model)) < 1.2 * weights_bytes


def plain_save_bytes(model) -> int:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "m.keras")
        return (Path(folder) / "m.keras").stat().st_size
