"""A cached head trial against a naive fine-tune trial: same head, same epochs, same data.

Run: python benchmarks/cached_vs_naive.py [--epochs 3] [--image-size 128]
The naive trial pushes every image through the trainable MobileNet each epoch; the cached
trial trains the head on base outputs computed once (that one-off cost is shown apart).
"""

from __future__ import annotations

from common import Timer, machine, parser, prepare, table

HEAD = dict(head_depth=3, dense_units=1024, dropout=0.5, learning_rate=2e-4)  # mn_resultset7


def main() -> None:
    args = parser(__doc__).parse_args()
    data, weights = prepare(args)
    import keras

    from study.data.images import make_dataset
    from study.trial.features import base_outputs
    from study.trial.fit import fit_best_epoch
    from study.trial.inference import Predictor
    from study.trial.model import build_base, build_head, build_model

    n_classes, batch = len(data.class_names), args.batch_size
    keras.utils.set_random_seed(0)
    naive = build_model(n_classes=n_classes, image_size=args.image_size, alpha=args.alpha, weights=weights,
                        mode="finetune", **HEAD)
    with Timer() as naive_time:
        naive_fit = fit_best_epoch(naive, make_dataset(data.x["train"], data.y["train"], batch, shuffle=True),
                                   Predictor(naive).scorer(data.x["val"], data.y["val"], batch), args.epochs)
    keras.backend.clear_session()

    base = build_base(args.image_size, args.alpha, weights)
    with Timer() as feature_time:
        features = {split: base_outputs(base, data.x[split]) for split in ("train", "val")}
    keras.utils.set_random_seed(0)
    head = build_head(feature_shape=features["train"].shape[1:], n_classes=n_classes, **HEAD)
    with Timer() as cached_time:
        cached_fit = fit_best_epoch(head, make_dataset(features["train"], data.y["train"], batch, shuffle=True),
                                    Predictor(head).scorer(features["val"], data.y["val"], batch), args.epochs)

    print(f"{machine()}; {len(data.y['train'])} training images, {args.image_size} px, alpha {args.alpha}, "
          f"{args.epochs} epochs, head 3 x Dense(1024), lr 2e-4, batch {batch}")
    print(table(["trial", "seconds", "best validation accuracy"], [
        ["naive fine-tune (images through the trainable base)", f"{naive_time.seconds:.1f}",
         f"{naive_fit.best_val_accuracy:.4f}"],
        ["cached head (features computed once)", f"{cached_time.seconds:.1f}", f"{cached_fit.best_val_accuracy:.4f}"],
        ["(one-off: computing the cached features)", f"{feature_time.seconds:.1f}", "-"],
    ]))
    print(f"ratio naive / cached trial time: {naive_time.seconds / cached_time.seconds:.1f}x")


if __name__ == "__main__":
    main()
