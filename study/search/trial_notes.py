"""The dashboard's view of each trial: a markdown note and its learning curve as an artifact.

Written by the objective when a trial ends; optuna-dashboard shows the note beside the trial
and the curve among its artifacts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from study.figures import plots
from study.markdown_text import count, size
from study.store.record import COST_KEYS, CostKey, learning_curve_name


def trial_note(number: int, params: dict[str, Any], state: str, history: dict[str, list[float]],
               best_epoch: int | None, test_accuracy: float | None, cost: dict | None = None) -> str:
    """The markdown note the dashboard shows beside a trial (with its cost, see `study.trial.cost`)."""
    lines = [f"### Trial {number}: {state.lower()}", ""]
    lines += [f"- `{name}` = {value:.4g}" if isinstance(value, float) else f"- `{name}` = {value}"
              for name, value in params.items()]
    val = history.get("val_accuracy", [])
    lines.append(f"- epochs run: {len(val)}")
    if best_epoch is not None and val:
        lines.append(f"- best epoch: {best_epoch} (validation accuracy {val[best_epoch - 1]:.4f})")
    if test_accuracy is not None:
        lines.append(f"- test accuracy of the restored model: {test_accuracy:.4f}")
    if cost:
        lines.append(f"- cost: {count(cost[CostKey.PARAMS_TOTAL])} parameters "
                     f"({count(cost[CostKey.PARAMS_BASE])} base + {count(cost[CostKey.PARAMS_HEAD])} head), "
                     f"{count(cost[CostKey.MACS])} multiply-adds, "
                     f"{size(cost[CostKey.MODEL_BYTES])} saved, {cost[CostKey.LATENCY_MS]:.1f} ms batch-1 latency")
    return "\n".join(lines)


def record_trial(store, trial, params: dict[str, Any], state: str, history: dict[str, list[float]],
                 best_epoch: int | None, test_accuracy: float | None, label: str) -> str | None:
    """Upload the trial's learning-curve PNG and write its note; returns the artifact id."""
    import optuna_dashboard
    from optuna.artifacts import upload_artifact

    cost = {key: trial.user_attrs[key] for key in COST_KEYS if key in trial.user_attrs}
    note = trial_note(trial.number, params, state, history, best_epoch, test_accuracy,
                      cost if len(cost) == len(COST_KEYS) else None)
    optuna_dashboard.save_note(trial, note)
    if not history.get("loss"):
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / learning_curve_name(trial.number)
        plots.learning_curve(history, f"{label}: {state.lower()}", path, best_epoch)
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                               mimetype="image/png")
