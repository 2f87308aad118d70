"""Does the input pipeline keep up in finetune mode? A fit epoch fed by `make_dataset` (decoded
uint8 images, batched, prefetched, augmentation off) against the same model fed float tensors
already in memory.

Run: python benchmarks/input_pipeline.py [--image-size 128]
Each side trains two epochs; the second is timed, so graph tracing is left out.
"""

from __future__ import annotations

import numpy as np
from common import machine, parser, prepare, table

HEAD = dict(head_depth=3, dense_units=1024, dropout=0.5, learning_rate=2e-4)


def main() -> None:
    args = parser(__doc__).parse_args()
    data, weights = prepare(args)
    import keras
    import tensorflow as tf

    from study.data.images import make_dataset
    from study.trial.fit import fit_best_epoch
    from study.trial.inference import Predictor
    from study.trial.model import build_model

    x, y, batch = data.x["train"], data.y["train"], args.batch_size

    def second_epoch_seconds(train) -> float:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build_model(n_classes=len(data.class_names), image_size=args.image_size, alpha=args.alpha,
                            weights=weights, mode="finetune", **HEAD)
        val = Predictor(model).scorer(data.x["val"], data.y["val"], batch)
        return fit_best_epoch(model, train, val, 2).epoch_seconds[1]

    pipeline = second_epoch_seconds(make_dataset(x, y, batch, shuffle=True))
    tensors = tf.data.Dataset.from_tensors((tf.constant(x.astype(np.float32)), tf.constant(y))).unbatch()
    in_memory = second_epoch_seconds(tensors.batch(batch))
    n = len(y)
    print(f"{machine()}; {n} training images, {args.image_size} px, alpha {args.alpha}, batch {batch}, finetune")
    print(table(["input", "epoch seconds", "images/s"], [
        ["make_dataset (uint8 arrays, shuffle, cast, prefetch)", f"{pipeline:.2f}", f"{n / pipeline:.0f}"],
        ["float32 tensors already in memory", f"{in_memory:.2f}", f"{n / in_memory:.0f}"],
    ]))
    print(f"ratio pipeline / in-memory images/s: {in_memory / pipeline:.2f}")


if __name__ == "__main__":
    main()
