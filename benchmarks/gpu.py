"""Training speed where a GPU matters, side by side in one process: ready for the first GPU machine.

Run: python benchmarks/gpu.py [--images N] [--batch-size 32]

Rows: fine-tune and frozen images/s at alpha 0.25 / 128 px and alpha 1.0 / 224 px; the input
pipeline (`make_dataset` over uint8 arrays) against float32 tensors already in memory;
float32 against mixed precision (GPU only; "no GPU" otherwise) and against XLA (`--jit`).
Each row builds the original's head (3 x Dense(1024), Dropout 0.5) on MobileNet, trains one
epoch (the first `fit`: graph building and tracing included), then a second, timed epoch; a
trial's fixed cost is the first `fit` minus that steady epoch. Random pixels and untrained
weights: speed does not depend on weight values, so it runs offline anywhere.
"""

from __future__ import annotations

import time

import numpy as np
from common import machine, table

HEAD = dict(head_depth=3, dense_units=1024, dropout=0.5, learning_rate=2e-4)
SMALL, FULL = (0.25, 128), (1.0, 224)  # (alpha, px): this project's CPU setting, the original's


def measure(alpha: float, size: int, mode: str, images: int, batch: int, *, precision: str = "float32",
            jit: bool = False, in_memory: bool = False) -> tuple[float, float, float]:
    """(images/s of a steady epoch, first fit seconds, steady epoch seconds) for one configuration."""
    import keras
    import tensorflow as tf

    from study.data.images import make_dataset
    from study.trial.model import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 10, images).astype(np.int32)
    model = build_model(n_classes=10, image_size=size, alpha=alpha, weights=None, mode=mode, precision=precision,
                        jit=jit, **HEAD)
    if in_memory:
        data = tf.data.Dataset.from_tensor_slices((tf.constant(x.astype(np.float32)), tf.constant(y))).batch(batch)
    else:
        data = make_dataset(x, y, batch, shuffle=True)
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        model.fit(data, epochs=1, verbose=0, shuffle=False)  # make_dataset shuffles already
        seconds.append(time.perf_counter() - started)
    keras.mixed_precision.set_global_policy("float32")
    return images / seconds[1], seconds[0], seconds[1]


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, help="images per epoch (default 4096 on a GPU, 256 on a CPU)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--smoke", action="store_true", help="tiny inputs: checks the script runs (numbers mean nothing)")
    args = p.parse_args()
    import tensorflow as tf

    from study.trial.devices import describe_devices, tensorflow_gpus

    tf.get_logger().setLevel("ERROR")  # every row builds a new model: retracing is the point here

    gpus = tensorflow_gpus()
    images = args.images or (4096 if gpus else 256)
    small, full = SMALL, FULL
    if args.smoke:
        images, small, full = 16, (0.25, 32), (0.25, 48)
    batch = args.batch_size
    rows, speed = [], {}

    def row(label: str, key: str, alpha: float, size: int, mode: str, needs_gpu: bool = False, **options) -> None:
        if needs_gpu and not gpus:
            rows.append([label, "no GPU", "-", "-", "-"])
            return
        rate, first, steady = measure(alpha, size, mode, images, batch, **options)
        speed[key] = rate
        rows.append([label, f"{rate:.0f}", f"{first:.2f}", f"{steady:.2f}", f"{first - steady:.2f}"])

    row(f"fine-tune, alpha {small[0]}, {small[1]} px", "small_finetune", *small, "finetune")
    row(f"frozen, alpha {small[0]}, {small[1]} px", "small_frozen", *small, "frozen")
    row(f"fine-tune, alpha {full[0]}, {full[1]} px", "full_finetune", *full, "finetune")
    row(f"frozen, alpha {full[0]}, {full[1]} px", "full_frozen", *full, "frozen")
    row(f"fine-tune, alpha {small[0]}, {small[1]} px, float32 tensors in memory", "small_memory", *small, "finetune",
        in_memory=True)
    row(f"fine-tune, alpha {small[0]}, {small[1]} px, XLA (--jit)", "small_jit", *small, "finetune", jit=True)
    row(f"fine-tune, alpha {small[0]}, {small[1]} px, mixed precision", "small_mixed", *small, "finetune",
        needs_gpu=True, precision="mixed")
    row(f"fine-tune, alpha {full[0]}, {full[1]} px, mixed precision", "full_mixed", *full, "finetune",
        needs_gpu=True, precision="mixed")

    print(f"{machine()}; TensorFlow {tf.__version__}; {describe_devices(gpus)}; {images} random images per "
          f"epoch, batch {batch}, head 3 x Dense(1024), untrained weights")
    print(table(["configuration", "images/s (steady epoch)", "first fit s", "steady epoch s",
                 "fixed cost s (first - steady)"], rows))
    mixed = (f"{speed['full_mixed'] / speed['full_finetune']:.2f}" if "full_mixed" in speed else "no GPU")
    print(f"ratio pipeline / in-memory images/s: {speed['small_finetune'] / speed['small_memory']:.2f}; "
          f"XLA / plain: {speed['small_jit'] / speed['small_finetune']:.2f}; "
          f"mixed / float32 at alpha {full[0]}, {full[1]} px: {mixed}")


if __name__ == "__main__":
    main()
