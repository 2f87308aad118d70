"""The demo's whole study one trial at a time against `--jobs 2`, side by side.

Run: python benchmarks/jobs.py [--rounds 2]
Each round runs the demo's study (`study.demo.demo_config`: generated shapes, untrained
alpha-0.25 MobileNet at 32 px, 11 trials of 8 epochs, the seven first) twice, each in a new
folder: with one job and with two, alternating which goes first. Printed per run: its wall
time, its best validation accuracy, and the median of a trial's fixed cost (its wall time minus
its epochs x its median epoch after the first); then the ratio of the median wall times.
`--smoke` runs 2 trials of 1 epoch on fewer images (its numbers mean nothing).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import machine, steady_epoch_seconds, table


def demo_study(jobs: int, smoke: bool) -> dict:
    """One run of the demo's study with `jobs` trials at a time: wall seconds, best value, fixed cost."""
    import optuna

    from study.demo import demo_config, write_demo_images
    from study.search.runner import run_study

    folder = Path(tempfile.mkdtemp(prefix="study-jobs-"))
    write_demo_images(folder / "images", per_class=8 if smoke else 96)
    config = replace(demo_config(folder), jobs=jobs)
    if smoke:
        config = replace(config, n_trials=2, train=replace(config.train, epochs=1))
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_study(config)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the study with --jobs {jobs} exited with {code}")
    # finished trials only: with fewer trials than the seven (--smoke), the rest stay queued
    trials = optuna.load_study(study_name=config.study_name, storage=config.storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    fixed = []
    for trial in trials:
        epochs = trial.user_attrs["epoch_seconds"]
        steady = steady_epoch_seconds(epochs)
        fixed.append((trial.datetime_complete - trial.datetime_start).total_seconds() - len(epochs) * steady)
    best = max(t.value for t in trials if t.value is not None)
    return {"seconds": seconds, "best": best, "fixed": statistics.median(fixed), "trials": len(trials)}


def main() -> None:
    import argparse

    import optuna

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch: checks the script runs")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results: dict[int, list[dict]] = {1: [], 2: []}
    for round_number in range(1 if args.smoke else args.rounds):
        for jobs in ((1, 2) if round_number % 2 == 0 else (2, 1)):
            results[jobs].append(demo_study(jobs, args.smoke))
    rows = [[f"--jobs {jobs}", f"{r['seconds']:.1f}", r["trials"], f"{r['best']:.4f}", f"{r['fixed']:.2f}"]
            for jobs in (1, 2) for r in results[jobs]]
    print(f"{machine()}; the demo's study, {'smoke: 2 trials of 1 epoch' if args.smoke else '11 trials of 8 epochs'}")
    print(table(["run", "wall s", "trials", "best val accuracy", "median fixed cost per trial s"], rows))
    one, two = (statistics.median(r["seconds"] for r in results[jobs]) for jobs in (1, 2))
    print(f"ratio one job / two jobs, median wall time: {one / two:.2f}x ({one:.1f} s -> {two:.1f} s)")


if __name__ == "__main__":
    main()
