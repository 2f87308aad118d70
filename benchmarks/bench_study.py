"""Helpers for the study-level benchmarks: an in-memory study over the real Objective and trial runtime."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna

from study.config import AugmentConfig, RunConfig, SplitConfig, TrainConfig
from study.search.objective import Objective
from study.search.runner import make_pruner, make_sampler, start_runtime
from study.space.spec import load_space
from study.store.storage import resolve_storage


def cached_objective(data, weights, args, space: str = "default", isolation: str = "process") -> Objective:
    """The real Objective in cached mode, trials in the runtime `isolation` names (features and
    decoded images cached in a temporary folder). Close `objective.runtime` when done."""
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
                        alpha=args.alpha, weights=args.weights, mode="cached", augment=AugmentConfig(enabled=False))
    folder = Path(tempfile.mkdtemp(prefix="study-bench-"))
    location = resolve_storage(f"sqlite:///{folder / 'bench.db'}")
    setup, runtime, _, _ = start_runtime(data, SplitConfig(), train, location,
                                         RunConfig(data.root, isolation=isolation), announce=False)
    return Objective(load_space(space), setup, runtime, folder / "best.keras", folder / "best.json")


def run_trials(objective, n_trials: int, pruner: str, epochs: int, callbacks=()):
    """An in-memory study of `n_trials` with a seeded TPE sampler; returns it and its seconds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0), pruner=make_pruner(pruner, epochs))
    started = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, gc_after_trial=True, callbacks=list(callbacks))
    return study, time.perf_counter() - started
