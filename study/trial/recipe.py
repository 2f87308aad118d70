"""The training recipe of a trial: loss smoothing, optimizer, learning-rate schedule, head warm-up.

A `Recipe` holds plain values (no Optuna here); every default is the original seven's recipe
(Adam, no smoothing, a constant rate, no warm-up, the whole model trained from the first
epoch), so a space that declares none of these keys trains exactly as before.

The learning rate follows `learning_rate_factor`: a linear warm-up over `warmup_epochs`, then
constant or a cosine decay to 0 at the last epoch of the budget. With `head_warmup_epochs`,
those first epochs train the new head on a frozen base; the base then trains too, and the
whole model continues at the scheduled rate times `finetune_lr_ratio`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained; the defaults are the seven's."""

    label_smoothing: float = 0.0  # the original's loss: plain cross-entropy
    weight_decay: float = 0.0  # decoupled (AdamW); 0: Adam, the original's optimizer
    lr_schedule: str = "constant"  # the original's rate never changed
    warmup_epochs: int = 0  # linear warm-up of the rate from ~0
    head_warmup_epochs: int = 0  # epochs training only the new head before the base joins
    finetune_lr_ratio: float = 1.0  # after the head warm-up, the rate is multiplied by this

    @classmethod
    def from_params(cls, params: dict) -> "Recipe":
        """The recipe of a trial's parameters (keys it does not name keep their defaults)."""
        values = {f.name: params[f.name] for f in fields(cls) if f.name in params}
        return cls(**values)


NEUTRAL = {f.name: f.default for f in fields(Recipe)}  # the seven's value of every recipe key


def learning_rate_factor(step: int, *, steps_per_epoch: int, epochs: int, warmup_epochs: int = 0,
                         cosine: bool = False) -> float:
    """The multiple of the peak learning rate at training step `step` (0-based) of an `epochs` budget.

    Warm-up rises linearly to 1 over `warmup_epochs` (reaching it on the warm-up's last step);
    then the factor stays 1, or follows half a cosine to 0 at the end of the budget.
    """
    warmup_steps = warmup_epochs * steps_per_epoch
    total_steps = max(epochs * steps_per_epoch, 1)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_schedule(peak: float, recipe: Recipe, *, steps_per_epoch: int, epochs: int, scale: float = 1.0,
                  offset_steps: int = 0):
    """A Keras learning-rate schedule: `peak` x `scale` x `learning_rate_factor(step + offset_steps)`.

    A constant rate without warm-up is a plain float, as the original's Adam had.
    """
    if recipe.lr_schedule == "constant" and recipe.warmup_epochs == 0:
        return peak * scale
    return _schedule_class()(peak, scale, steps_per_epoch, epochs, recipe.warmup_epochs,
                             recipe.lr_schedule == "cosine", offset_steps)


@functools.cache
def _schedule_class():
    """`learning_rate_factor` as a Keras schedule class, defined once Keras is imported."""
    import keras

    @keras.saving.register_keras_serializable(package="study")
    class RecipeSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """`learning_rate_factor` in Keras ops (the optimizer calls it with its step counter)."""

        def __init__(self, peak, scale, steps_per_epoch, epochs, warmup_epochs, cosine, offset_steps):
            self.peak, self.scale = float(peak), float(scale)
            self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
            self.warmup_epochs, self.cosine, self.offset_steps = int(warmup_epochs), bool(cosine), int(offset_steps)

        def __call__(self, step):
            ops = keras.ops
            step = ops.cast(step, "float32") + self.offset_steps
            warmup_steps = float(self.warmup_epochs * self.steps_per_epoch)
            total_steps = float(max(self.epochs * self.steps_per_epoch, 1))
            factor = ops.ones_like(step)
            if warmup_steps > 0:
                factor = ops.where(step < warmup_steps, (step + 1.0) / warmup_steps, factor)
            if self.cosine:
                progress = ops.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1.0), 0.0, 1.0)
                decay = 0.5 * (1.0 + ops.cos(math.pi * progress))
                factor = ops.where(step < warmup_steps, factor, decay)
            return self.peak * self.scale * factor

        def get_config(self):
            return {"peak": self.peak, "scale": self.scale, "steps_per_epoch": self.steps_per_epoch,
                    "epochs": self.epochs, "warmup_epochs": self.warmup_epochs, "cosine": self.cosine,
                    "offset_steps": self.offset_steps}

    return RecipeSchedule


def make_optimizer(learning_rate, weight_decay: float = 0.0):
    """Adam (the original's), or AdamW with decoupled weight decay when `weight_decay` > 0.

    Under TensorFlow both update each weight with TensorFlow's fused Adam kernel (the same
    arithmetic as Keras' Adam): Keras' update is about ten small operations per weight, and
    tracing them for MobileNet's ~170 weights was a third of each trial's fixed cost.
    """
    import keras

    adam, adamw = _fused_classes() if keras.backend.backend() == "tensorflow" else (
        keras.optimizers.Adam, keras.optimizers.AdamW)
    if weight_decay > 0:
        return adamw(learning_rate=learning_rate, weight_decay=weight_decay)
    return adam(learning_rate=learning_rate)


@functools.cache
def _fused_classes():
    """Adam and AdamW whose per-weight update is one `ResourceApplyAdam` (TensorFlow only)."""
    import keras
    import tensorflow as tf

    class FusedUpdate:
        """The per-weight update of Adam and AdamW as one kernel; amsgrad and sparse gradients
        keep Keras' own."""

        _scalars: dict | None = None

        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            # The step's scalars (beta powers, cast rates) are made once per dtype and shared by
            # every weight's update: per weight they were ~10 of the train step's ~4,000 nodes.
            self._scalars = {}
            try:
                super()._backend_update_step(grads, trainable_variables, learning_rate)
            finally:
                self._scalars = None

        def _step_scalars(self, dtype, learning_rate) -> dict:
            if self._scalars is not None and dtype in self._scalars:
                return self._scalars[dtype]
            step = tf.cast(self.iterations + 1, dtype)
            beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
            scalars = dict(beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                           lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
                           epsilon=tf.cast(self.epsilon, dtype))
            if self._scalars is not None:
                self._scalars[dtype] = scalars
            return scalars

        def update_step(self, gradient, variable, learning_rate):
            if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
                return super().update_step(gradient, variable, learning_rate)
            dtype = variable.dtype
            index = self._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
                grad=tf.cast(gradient, dtype), **self._step_scalars(dtype, learning_rate))

    @keras.saving.register_keras_serializable(package="study")
    class FusedAdam(FusedUpdate, keras.optimizers.Adam):
        pass

    @keras.saving.register_keras_serializable(package="study")
    class FusedAdamW(FusedUpdate, keras.optimizers.AdamW):
        pass

    return FusedAdam, FusedAdamW


def make_loss(n_classes: int, label_smoothing: float = 0.0):
    """Cross-entropy on integer labels; with smoothing, each label becomes 1 - s on its class and
    s / n_classes spread over all (Keras' sparse loss has no smoothing argument)."""
    if label_smoothing == 0:
        return "sparse_categorical_crossentropy"
    import keras

    @keras.saving.register_keras_serializable(package="study")
    def smoothed_sparse_crossentropy(y_true, y_pred):
        labels = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), n_classes)
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=label_smoothing)

    return smoothed_sparse_crossentropy
