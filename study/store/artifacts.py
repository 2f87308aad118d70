"""The artifact store of a study: the folder beside the storage that optuna-dashboard serves.

Artifacts live in a folder beside the storage (`<files dir>/artifacts`), which
`python -m study dashboard` (or `optuna-dashboard URL --artifact-dir DIR`) serves.
"""

from __future__ import annotations

from pathlib import Path

from study.store.record import ARTIFACT_DIR_NAME
from study.store.storage import StorageLocation


def artifact_dir(location: StorageLocation) -> Path:
    return location.files_dir / ARTIFACT_DIR_NAME


def artifact_store(location: StorageLocation):
    """Optuna's file-system artifact store beside the storage."""
    from optuna.artifacts import FileSystemArtifactStore

    folder = artifact_dir(location)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def upload_model(store, trial, model_path: Path) -> str:
    """Attach the saved best model to its trial."""
    from optuna.artifacts import upload_artifact

    return upload_artifact(artifact_store=store, file_path=str(model_path), study_or_trial=trial,
                           mimetype="application/zip")
