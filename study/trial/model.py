"""MobileNet with the original project's dense head, built from plain values (no Optuna here).

The architecture is the original "MobileNet - F - D(n) - ... - D(n)": an ImageNet
MobileNet without its top, `Flatten`, `head_depth` times `Dense(dense_units, relu)` +
`Dropout(dropout)`, and a softmax, compiled with Adam. Inputs are raw 0-255 RGB pixels; the
model rescales them to MobileNet's [-1, 1] itself, so a saved model needs no preprocessing.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from study.data.images import make_augmenter
from study.errors import WeightsError
from study.trial.recipe import Recipe, make_loss, make_optimizer, make_schedule

MODES = ("finetune", "frozen", "cached", "two-stage")
POOLINGS = ("flatten", "avg", "max")  # how the base's feature map reaches the head; the original's is flatten
MOBILENET_BLOCKS = 13  # depthwise-separable blocks conv_dw_1/conv_pw_1 .. conv_dw_13/conv_pw_13
ALPHA_FILE_TAGS = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}  # as in Keras' file names
KERAS_WEIGHT_ROWS = (128, 160, 192, 224)  # input sizes Keras publishes weights for
WEIGHTS_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MIN_IMAGE_SIZE = 32  # MobileNet's smallest input


def imagenet_weights_filename(alpha: float, image_size: int) -> str:
    """The file Keras downloads for `MobileNet(alpha, include_top=False, weights="imagenet")`."""
    rows = image_size if image_size in KERAS_WEIGHT_ROWS else 224
    return f"mobilenet_{ALPHA_FILE_TAGS[alpha]}_{rows}_tf_no_top.h5"


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models (default ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def resolve_weights(weights: str, alpha: float, image_size: int) -> str | None:
    """Turn `imagenet`, `none` or a file path into what `keras.applications.MobileNet` takes.

    For `imagenet` the file is fetched into Keras' cache unless it is already there; when that
    fails (no internet) a WeightsError says which file is wanted and where to put it.
    """
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        filename = imagenet_weights_filename(alpha, image_size)
        if (keras_models_dir() / filename).is_file():
            return "imagenet"
        import keras

        try:
            keras.utils.get_file(filename, WEIGHTS_ORIGIN + filename, cache_subdir="models")
        except Exception as error:
            raise WeightsError(
                f"ImageNet weights for MobileNet alpha={alpha} are not available offline: Keras wants "
                f"'{filename}' ({type(error).__name__}); put it in {keras_models_dir()}/ "
                f"($KERAS_HOME/models/{filename}) or pass --weights PATH"
            ) from None
        return "imagenet"
    path = Path(weights)
    if path.is_dir():
        path = weights_file_in(path, alpha, image_size)
    if not path.is_file():
        raise WeightsError(f"weights file '{path}' does not exist "
                           "(expected imagenet, none, the path of a MobileNet .h5 file or a folder of them)")
    with open(path, "rb") as handle:
        if handle.read(8) != HDF5_SIGNATURE:
            raise WeightsError(f"weights file '{path}' is not an HDF5 (.h5) Keras weights file")
    return str(path)


def weights_file_in(folder: Path, alpha: float, image_size: int) -> Path:
    """The file for (alpha, image size) in a folder of Keras' MobileNet weights files.

    Keras' own name for that size first, else any input size of that alpha (224 preferred):
    the convolutions' weights fit every input size.
    """
    exact = folder / imagenet_weights_filename(alpha, image_size)
    if exact.is_file():
        return exact
    tag = ALPHA_FILE_TAGS.get(alpha)
    candidates = sorted(folder.glob(f"mobilenet_{tag}_*_tf_no_top.h5"),
                        key=lambda p: (p.name != f"mobilenet_{tag}_224_tf_no_top.h5", p.name))
    if tag is None or not candidates:
        raise WeightsError(f"weights folder '{folder}' has no MobileNet alpha={alpha} file "
                           f"(expected {exact.name}, as Keras names them)")
    return candidates[0]


def check_weights(weights: str, alpha: float, image_size: int) -> str | None:
    """Resolve `weights` and load them once into a bare base, so a bad file fails before any trial."""
    resolved = resolve_weights(weights, alpha, image_size)
    if resolved is None:
        return None
    try:
        build_base(image_size, alpha, resolved)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(
            f"weights '{weights}' do not fit MobileNet alpha={alpha} at {image_size} px: {reason}"
        ) from None
    finally:
        import keras

        keras.backend.clear_session()
    return resolved


def build_base(image_size: int, alpha: float, weights: str | None):
    """`keras.applications.MobileNet` without its top, for square RGB inputs."""
    import keras

    with warnings.catch_warnings():
        # Keras warns that sizes other than 128/160/192/224 load the 224 px weights; the
        # convolution weights do not depend on the input size, so that is what we want.
        warnings.filterwarnings("ignore", message=".*input_shape.*")
        return keras.applications.MobileNet(
            input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False, weights=weights
        )


def build_model(*, n_classes: int, image_size: int, alpha: float, weights: str | None,
                head_depth: int, dense_units: int, dropout: float, learning_rate: float,
                mode: str = "finetune", precision: str = "float32", jit: bool = False, pooling: str = "flatten",
                unfreeze_blocks: int = MOBILENET_BLOCKS, recipe: Recipe | None = None, steps_per_epoch: int = 1,
                epochs: int = 1, augment=None, augment_seed: int = 0):
    """MobileNet -> Flatten (or pooling) -> head_depth x (Dense + Dropout) -> softmax, compiled with Adam.

    Args:
        weights: what `resolve_weights` returned (None, "imagenet" or a file path).
        mode: "finetune" trains the base as well (the original), "frozen" only the head.
        pooling: "flatten" (the original), "avg" or "max" (global pooling of the feature map).
        unfreeze_blocks: finetune mode: how many of MobileNet's top blocks train (13: all, the original).
        precision: "float32", or "mixed" for float16 compute with float32 weights (GPU).
        jit: compile the training step with XLA (opt-in: measure it, see benchmarks/gpu.py).
        recipe: loss smoothing, weight decay and learning-rate schedule (default: the seven's,
            plain Adam at a constant rate); the schedule spans `epochs` of `steps_per_epoch`.
            With a head warm-up, the base starts frozen: `unfreeze_base` lets it train later.
        augment: an `AugmentConfig` whose random layers go inside the model, in front of the
            rescaling: they act in training only, on the device. The jax and torch backends
            augment here, so images travel to the device as uint8 (TensorFlow augments in tf.data).
    Returns:
        A compiled `keras.Model` taking (image_size, image_size, 3) pixels in 0-255.
    """
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16" if precision == "mixed" else "float32")
    recipe = recipe or Recipe()
    base = build_base(image_size, alpha, weights)
    # "frozen" (and the cached modes) train the head only, as does a head warm-up at first
    set_trainable_blocks(base, unfreeze_blocks if mode == "finetune" and not recipe.head_warmup_epochs else 0)
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    augmenter = make_augmenter(augment, augment_seed) if augment is not None else None
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(
        augmenter(inputs) if augmenter is not None else inputs)
    if weights is not None:
        # training=False keeps a pretrained base's BatchNorm in inference mode even while it
        # is fine-tuned, so its ImageNet statistics are not wrecked by small batches (Keras
        # transfer-learning guide).
        x = base(x, training=False)
    else:
        # An untrained base has no statistics to keep: with BatchNorm in inference mode its
        # output is ~1e-18 and nothing is learned. Let BatchNorm learn, and quickly enough
        # that short runs (tests, the demo) validate on usable statistics.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.8
        x = base(x)
    outputs = add_head(x, n_classes=n_classes, head_depth=head_depth, dense_units=dense_units, dropout=dropout,
                       pooling=pooling)
    model = keras.Model(inputs, outputs, name=f"mobilenet_F_{head_depth}xD{dense_units}")
    return compile_recipe(model, learning_rate, recipe, n_classes=n_classes, steps_per_epoch=steps_per_epoch,
                          epochs=epochs, jit=jit)


def add_head(x, *, n_classes: int, head_depth: int, dense_units: int, dropout: float, pooling: str = "flatten"):
    """Flatten (or global pooling) -> head_depth x (Dense + Dropout) -> softmax, applied to the tensor `x`."""
    import keras

    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    for index in range(head_depth):
        x = keras.layers.Dense(dense_units, activation="relu", name=f"dense_{index + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{index + 1}")(x)
    # The softmax stays in float32 under mixed precision, where float16 would lose small probabilities.
    return keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="classes")(x)


def compile_adam(model, learning_rate: float, jit: bool = False):
    """Compile with the original's recipe: Adam at a constant rate, plain cross-entropy."""
    return compile_recipe(model, learning_rate, Recipe(), n_classes=0, jit=jit)


def compile_recipe(model, learning_rate: float, recipe: Recipe, *, n_classes: int, steps_per_epoch: int = 1,
                   epochs: int = 1, jit: bool = False, scale: float = 1.0, offset_epochs: int = 0):
    """Compile `model` for `recipe`: its loss, optimizer and schedule (times `scale`, starting
    `offset_epochs` into the budget: the fine-tuning phase after a head warm-up)."""
    schedule = make_schedule(learning_rate, recipe, steps_per_epoch=steps_per_epoch, epochs=epochs, scale=scale,
                             offset_steps=offset_epochs * steps_per_epoch)
    import keras

    model.compile(
        optimizer=make_optimizer(schedule, recipe.weight_decay),
        loss=make_loss(n_classes, recipe.label_smoothing),
        metrics=["accuracy"],
        # explicit: Keras' "auto" may change its mind between versions. Under jax XLA is how a
        # step runs at all: without it every operation is dispatched on its own, ~30x slower.
        jit_compile=jit or keras.backend.backend() == "jax",
    )
    build_training_state(model)
    return model


def build_training_state(model) -> None:
    """Create the optimizer's and the metrics' variables of a compiled model now.

    Keras creates them inside the first trace of the train step when no distribution
    strategy is set, and TensorFlow traces a function again whenever its first trace
    created variables: every trial paid for its train step's trace twice (measured by
    benchmarks/trial_overhead.py). This is Keras' own up-front build (`_symbolic_build`)
    without its symbolic pass through the whole model, which the metrics do not need.
    """
    import keras

    model.optimizer.build(model.trainable_variables)
    try:
        from keras.src.backend import compute_output_spec
    except ImportError:  # a Keras without it: the train step traces twice, as before
        return
    metrics, loss = getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)
    x = keras.KerasTensor((1,) + tuple(model.inputs[0].shape[1:]), "float32")
    y = keras.KerasTensor((1,), "int32")
    y_pred = keras.KerasTensor((1,) + tuple(model.outputs[0].shape[1:]), "float32")
    if metrics is not None and not metrics.built:
        compute_output_spec(model.compute_metrics, x, y, y_pred, sample_weight=None)
    if loss is not None and not loss.built:
        compute_output_spec(model._compute_loss, x, y, y_pred, sample_weight=None, training=False)


def base_of(model):
    """The MobileNet nested in a model built here."""
    import keras

    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_base(model, unfreeze_blocks: int, learning_rate: float, recipe: Recipe, *, n_classes: int,
                  steps_per_epoch: int, epochs: int, jit: bool = False):
    """After a head warm-up: let the base's top blocks train and compile again, the rate now
    times `finetune_lr_ratio` and the schedule resumed where the warm-up left it."""
    set_trainable_blocks(base_of(model), unfreeze_blocks)
    return compile_recipe(model, learning_rate, recipe, n_classes=n_classes, steps_per_epoch=steps_per_epoch,
                          epochs=epochs, jit=jit, scale=recipe.finetune_lr_ratio,
                          offset_epochs=recipe.head_warmup_epochs)


def build_head(*, feature_shape: tuple[int, ...], n_classes: int, head_depth: int, dense_units: int,
               dropout: float, learning_rate: float, jit: bool = False, pooling: str = "flatten",
               recipe: Recipe | None = None, steps_per_epoch: int = 1, epochs: int = 1):
    """The head alone, on cached base outputs of `feature_shape`, compiled with Adam (or `recipe`)."""
    import keras

    inputs = keras.Input(feature_shape, name="base_features")
    outputs = add_head(inputs, n_classes=n_classes, head_depth=head_depth, dense_units=dense_units,
                       dropout=dropout, pooling=pooling)
    model = keras.Model(inputs, outputs, name=f"head_{head_depth}xD{dense_units}")
    return compile_recipe(model, learning_rate, recipe or Recipe(), n_classes=n_classes,
                          steps_per_epoch=steps_per_epoch, epochs=epochs, jit=jit)


def with_base(head, *, image_size: int, alpha: float, weights: str | None, learning_rate: float,
              unfreeze_blocks: int = 0):
    """A full image model: a fresh base (top `unfreeze_blocks` blocks trainable) under a trained head."""
    import keras

    base = build_base(image_size, alpha, weights)
    set_trainable_blocks(base, unfreeze_blocks)
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(inputs)
    x = base(x, training=False)  # BatchNorm stays in inference mode (see build_model)
    model = keras.Model(inputs, head(x), name=f"mobilenet_{head.name}")
    return compile_adam(model, learning_rate)


def set_trainable_blocks(base, blocks: int) -> None:
    """Freeze the base except its top `blocks` depthwise-separable blocks (0: all frozen, 13: all trained)."""
    first = MOBILENET_BLOCKS - blocks + 1
    base.trainable = blocks > 0
    if blocks <= 0:
        return
    if blocks >= MOBILENET_BLOCKS:  # the whole base, its first standard convolution (conv1) included
        for layer in base.layers:
            layer.trainable = True
        return
    for layer in base.layers:
        parts = layer.name.split("_")
        number = next((int(p) for p in parts if p.isdigit()), None)
        layer.trainable = number is not None and number >= first and "conv" in layer.name


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = sum(math.prod(w.shape) for w in model.weights)
    return int(trainable), int(total)
