"""Pruned against unpruned study: same sampler and seed, cached mode; epochs run and best accuracy.

Run: python benchmarks/pruning.py [--trials 20] [--epochs 8] [--pruner median|hyperband]
"""

from __future__ import annotations

from bench_study import cached_objective, run_trials
from common import machine, parser, prepare, table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--pruner", choices=("median", "hyperband"), default="median")
    args = p.parse_args()
    if not args.smoke:
        args.epochs = max(args.epochs, 8)
    data, weights = prepare(args)
    trials = 2 if args.smoke else args.trials
    rows, results = [], {}
    for pruner in (args.pruner, "none"):
        objective = cached_objective(data, weights, args)
        study, seconds = run_trials(objective, trials, pruner, args.epochs)
        objective.runtime.close()
        epochs = sum(t.user_attrs.get("epochs_run", 0) for t in study.trials)
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        results[pruner] = (epochs, study.best_value)
        rows.append([pruner, trials, pruned, epochs, f"{study.best_value:.4f}", f"{seconds:.0f}"])
    print(f"{machine()}; cached mode, {args.image_size} px, alpha {args.alpha}, TPE seed 0, "
          f"{args.epochs} epochs per trial")
    print(table(["pruner", "trials", "pruned", "epochs run", "best validation accuracy", "seconds"], rows))
    (pruned_epochs, pruned_best), (full_epochs, full_best) = results[args.pruner], results["none"]
    print(f"ratio epochs run pruned / unpruned: {pruned_epochs / full_epochs:.2f}; "
          f"best accuracy difference: {100 * (pruned_best - full_best):+.2f} points")


if __name__ == "__main__":
    main()
