"""Progress lines: one line per finished trial, with its state, value, parameters and the best so far."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study.analysis import SEED_ATTR


def format_trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """One progress line: number, state, value, params, seed name, time, best so far."""
    attrs = trial.user_attrs
    parts = [f"trial {trial.number:>3} {trial.state.name:<8}"]
    if trial.state == TrialState.COMPLETE:
        parts.append(f"val {trial.value:.4f} test {attrs.get('test_accuracy', float('nan')):.4f}")
    elif trial.state == TrialState.PRUNED:
        parts.append(f"after {attrs.get('epochs_run', '?')} epochs")
    elif trial.state == TrialState.FAIL:
        parts.append(f"({attrs.get('fail_reason', 'failed')})")
    parts.append(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in trial.params.items()))
    if SEED_ATTR in attrs:
        parts.append(f"[{attrs[SEED_ATTR]}]")
    if trial.datetime_start and trial.datetime_complete:
        parts.append(f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s")
    try:
        parts.append(f"| best {study.best_value:.4f} (#{study.best_trial.number})")
    except ValueError:
        pass
    return "  ".join(parts)
