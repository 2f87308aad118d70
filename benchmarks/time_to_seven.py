"""How soon does a cached-mode study reach the best of the seven, against training the seven in full?

Run: python benchmarks/time_to_seven.py [--image-size 128] [--epochs 8] [--trials 40]
First the seven configurations are fine-tuned in full (the original's way) and timed; their
best validation accuracy is the target. Then a cached-mode study (features computed once,
the seven's own heads first, then TPE) runs until a trial reaches that target or the trials
run out. Time includes computing the features.
"""

from __future__ import annotations

import time

import optuna
from bench_study import cached_objective
from common import machine, parser, prepare, table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=40)
    args = p.parse_args()
    data, weights = prepare(args)
    import keras

    from study.data.images import make_dataset
    from study.space.spec import load_space
    from study.trial.fit import fit_best_epoch
    from study.trial.inference import Predictor
    from study.trial.model import build_model

    seven = load_space("seed").seeds[: 2 if args.smoke else 7]
    batch, seven_best, seven_seconds = args.batch_size, 0.0, 0.0
    for seed in seven:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build_model(n_classes=len(data.class_names), image_size=args.image_size, alpha=args.alpha,
                            weights=weights, mode="finetune", **seed.params)
        started = time.perf_counter()
        fit = fit_best_epoch(model, make_dataset(data.x["train"], data.y["train"], batch, shuffle=True),
                             Predictor(model).scorer(data.x["val"], data.y["val"], batch), args.epochs)
        seven_seconds += time.perf_counter() - started
        seven_best = max(seven_best, fit.best_val_accuracy)

    started = time.perf_counter()
    objective = cached_objective(data, weights, args)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, args.epochs // 3)))
    for seed in seven:
        study.enqueue_trial({k: v for k, v in seed.params.items() if k != "dropout"} | {"dropout": 0.5})
    reached = {}

    def stop_at_target(s, trial):
        if trial.value is not None and trial.value >= seven_best and "seconds" not in reached:
            reached["seconds"], reached["trial"] = time.perf_counter() - started, trial.number
            s.stop()

    study.optimize(objective, n_trials=2 if args.smoke else args.trials, callbacks=[stop_at_target],
                   gc_after_trial=True)
    study_seconds = reached.get("seconds", time.perf_counter() - started)
    objective.runtime.close()
    print(f"{machine()}; {len(data.y['train'])} training images, {args.image_size} px, alpha {args.alpha}, "
          f"{args.epochs} epochs per trial")
    print(table(["run", "seconds", "validation accuracy"], [
        [f"the seven, fine-tuned in full ({len(seven)} runs)", f"{seven_seconds:.0f}", f"best {seven_best:.4f}"],
        [f"cached study until it reaches that ({len(study.trials)} trials)", f"{study_seconds:.0f}",
         f"best {study.best_value:.4f}" + ("" if "seconds" in reached else " (target not reached)")],
    ]))
    print(f"ratio study time / seven's time: {study_seconds / seven_seconds:.2f}"
          + ("" if "seconds" in reached else " (target not reached: the study's whole time)"))


if __name__ == "__main__":
    main()
