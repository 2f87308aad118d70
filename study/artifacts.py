"""Per-trial artifacts for optuna-dashboard: a learning-curve PNG, a markdown note, the best model.

Artifacts live in a folder beside the storage (`<files dir>/artifacts`), which
`python -m study dashboard` (or `optuna-dashboard URL --artifact-dir DIR`) serves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from study.storage import StorageLocation

ARTIFACT_DIR_NAME = "artifacts"


def artifact_dir(location: StorageLocation) -> Path:
    return location.files_dir / ARTIFACT_DIR_NAME


def artifact_store(location: StorageLocation):
    """Optuna's file-system artifact store beside the storage."""
    from optuna.artifacts import FileSystemArtifactStore

    folder = artifact_dir(location)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def trial_note(number: int, params: dict[str, Any], state: str, history: dict[str, list[float]],
               best_epoch: int | None, test_accuracy: float | None, cost: dict | None = None) -> str:
    """The markdown note the dashboard shows beside a trial (with its cost, see `study.cost`)."""
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
        from study.markdown_text import count, size

        lines.append(f"- cost: {count(cost['params_total'])} parameters ({count(cost['params_base'])} base + "
                     f"{count(cost['params_head'])} head), {count(cost['macs'])} multiply-adds, "
                     f"{size(cost['model_bytes'])} saved, {cost['latency_ms']:.1f} ms batch-1 latency")
    return "\n".join(lines)


def record_trial(store, trial, params: dict[str, Any], state: str, history: dict[str, list[float]],
                 best_epoch: int | None, test_accuracy: float | None, label: str) -> str | None:
    """Upload the trial's learning-curve PNG and write its note; returns the artifact id."""
    import optuna_dashboard
    from optuna.artifacts import upload_artifact

    from study import plots

    from study.cost import COST_ATTRS

    cost = {key: trial.user_attrs[key] for key in COST_ATTRS if key in trial.user_attrs}
    note = trial_note(trial.number, params, state, history, best_epoch, test_accuracy,
                      cost if len(cost) == len(COST_ATTRS) else None)
    optuna_dashboard.save_note(trial, note)
    if not history.get("loss"):
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"learning_curve_trial_{trial.number}.png"
        plots.learning_curve(history, f"{label}: {state.lower()}", path, best_epoch)
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                               mimetype="image/png")


def upload_model(store, trial, model_path: Path) -> str:
    """Attach the saved best model to its trial."""
    from optuna.artifacts import upload_artifact

    return upload_artifact(artifact_store=store, file_path=str(model_path), study_or_trial=trial,
                           mimetype="application/zip")
