"""Helpers for the study-level benchmarks: an in-memory study over the real Objective."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna

from study.config import AugmentConfig, TrainConfig
from study.features import cached_features, weights_identity
from study.model import build_base
from study.objective import Objective
from study.runner import make_pruner, make_sampler
from study.search_space import load_space


def cached_objective(data, weights, args, space: str = "default") -> Objective:
    """The real Objective in cached mode (features cached in a temporary folder)."""
    import keras

    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
                        alpha=args.alpha, weights=args.weights, mode="cached", augment=AugmentConfig(enabled=False))
    folder = Path(tempfile.mkdtemp(prefix="study-bench-"))
    base = build_base(args.image_size, args.alpha, weights)
    features = cached_features(data, base, folder / "cache", weights_identity(weights, 0), alpha=args.alpha,
                               image_size=args.image_size)
    keras.backend.clear_session()
    return Objective(load_space(space), data, train, weights, folder / "best.keras", folder / "best.json",
                     features=features)


def run_trials(objective, n_trials: int, pruner: str, epochs: int, callbacks=()):
    """An in-memory study of `n_trials` with a seeded TPE sampler; returns it and its seconds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0), pruner=make_pruner(pruner, epochs))
    started = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, gc_after_trial=True, callbacks=list(callbacks))
    return study, time.perf_counter() - started
