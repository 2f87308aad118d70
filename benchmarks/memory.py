"""Resident memory over many trials in one process (cached mode): after trial 5 and after trial 30.

Run: python benchmarks/memory.py [--trials 30]
Uses the real Objective, which clears the Keras session and collects garbage before each trial.
"""

from __future__ import annotations

from pathlib import Path

from bench_study import cached_objective, run_trials
from common import machine, parser, prepare, rss_mb, table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=30)
    args = p.parse_args()
    data, weights = prepare(args)
    trials = 6 if args.smoke else args.trials
    objective = cached_objective(data, weights, args, space=str(Path(__file__).with_name("memory_space.toml")))
    memory = {}
    run_trials(objective, trials, "none", args.epochs,
               callbacks=[lambda study, trial: memory.__setitem__(trial.number + 1, rss_mb())])
    early = 5
    print(f"{machine()}; cached mode, {args.image_size} px, alpha {args.alpha}, {args.epochs} epochs per trial, "
          "the same 3 x Dense(1024) head in every trial")
    print(table(["after trial", "resident memory (MiB)"], [[n, f"{memory[n]:.0f}"] for n in sorted(memory)
                                                             if n in (1, early, 10, 20, trials)]))
    print(f"ratio resident memory after trial {trials} / after trial {early}: {memory[trials] / memory[early]:.3f}")


if __name__ == "__main__":
    main()
