"""What a model costs: parameters (base and head), multiply-adds for one image, saved bytes, latency.

Multiply-adds count the layers that dominate MobileNet's cost, as its paper does: standard
and depthwise convolutions and dense layers. Batch normalisation (folded into the convolution
when a model is converted for a phone), activations, pooling and rescaling are not counted.
Latency is the median of repeated batch-1 calls on this machine after warm-up calls
(see `study.trial.inference.Predictor.latency_ms`).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from study.store.record import CostKey


def parameter_counts(model, base_prefix: str = "mobilenet") -> tuple[int, int, int]:
    """(base, head, total) parameters: the base is the nested model named `base_prefix...` (Keras
    names MobileNet `mobilenet_<alpha>_<size>`), the head everything else (a nested head too)."""
    import keras

    total = int(model.count_params())
    base = sum(int(layer.count_params()) for layer in model.layers
               if isinstance(layer, keras.Model) and layer.name.startswith(base_prefix))
    return base, total - base, total


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def layer_multiply_adds(layer) -> int:
    """Multiply-adds of one call of `layer` on one image (0 for layers that are not counted)."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        out = _shape(layer.output)
        kh, kw = layer.kernel_size
        in_channels = _shape(layer.input)[-1]
        return out[0] * out[1] * kh * kw * in_channels * layer.depth_multiplier
    if isinstance(layer, keras.layers.Conv2D):
        out = _shape(layer.output)
        kh, kw = layer.kernel_size
        in_channels = _shape(layer.input)[-1]
        return out[0] * out[1] * kh * kw * (in_channels // layer.groups) * out[-1]
    if isinstance(layer, keras.layers.Dense):
        in_shape = _shape(layer.input)
        return math.prod(in_shape[:-1]) * in_shape[-1] * layer.units
    return 0


def multiply_adds(model) -> int:
    """Multiply-adds for one image through `model`, nested models included."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_adds(layer)
        else:
            total += layer_multiply_adds(layer)
    return int(total)


def inference_copy(model):
    """`model` without compile settings or optimizer state: what a deployed model holds.

    Keras 3 saves an optimizer's state with a model (Adam: two values per trained weight),
    also a nested compiled model's, such as a cached-mode head put on its base, even before
    it trained; `clone_model` would share the optimizer. A model with no compiled model inside
    gets a new functional model over its own layers and weights (no layer is rebuilt: ~0.3 s
    of every trial at the test suite's size); one with a compiled model inside gets a copy made
    from its config with the compile settings dropped, and its weights.
    """
    import keras

    if getattr(model, "inputs", None) and getattr(model, "outputs", None) and not _has_compiled_submodel(model):
        return keras.Model(model.inputs, model.outputs, name=model.name)
    copy = keras.Model.from_config(_without_compile(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _has_compiled_submodel(model) -> bool:
    import keras

    return any(isinstance(layer, keras.Model) and (getattr(layer, "compiled", False) or _has_compiled_submodel(layer))
               for layer in model.layers)


def _without_compile(config):
    """`config` with every nested model's compile settings dropped (a compiled nested model would
    get a new optimizer, whose variables Keras saves too)."""
    if isinstance(config, dict):
        return {key: _without_compile(value) for key, value in config.items() if key != "compile_config"}
    if isinstance(config, list):
        return [_without_compile(value) for value in config]
    return config


def saved_bytes(model, keep: Path | None = None) -> int:
    """The size of `model` saved as a `.keras` file: at `keep` (written atomically), or in a
    temporary folder that is removed. Give it an inference copy (see `inference_copy`)."""
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        partial = keep.with_name(f".{keep.stem}.{os.getpid()}.partial.keras")
        model.save(partial)
        os.replace(partial, keep)
        return keep.stat().st_size
    with tempfile.TemporaryDirectory(prefix="study-size-") as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.stat().st_size


def measure_cost(copy, keep: Path | None = None, latency: Callable[[], float] | None = None) -> dict:
    """Every cost attribute of a model that takes images (see `study.store.record.COST_KEYS`),
    measured on its inference copy (see `inference_copy`); with `keep`, that copy stays saved
    there. `latency` measures the batch-1 latency in milliseconds (default: a `Predictor` of
    the copy)."""
    base, head, total = parameter_counts(copy)
    if latency is None:
        from study.trial.inference import Predictor

        latency = Predictor(copy).latency_ms
    return {CostKey.PARAMS_BASE: base, CostKey.PARAMS_HEAD: head, CostKey.PARAMS_TOTAL: total,
            CostKey.MACS: multiply_adds(copy), CostKey.MODEL_BYTES: saved_bytes(copy, keep),
            CostKey.LATENCY_MS: latency()}
