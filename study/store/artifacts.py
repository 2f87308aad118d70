"""The artifact store of a study: beside the storage by default, or one shared store every machine reads.

Without `--artifacts`, artifacts live in a folder beside the storage (`<files dir>/artifacts`),
which `python -m study dashboard` (or `optuna-dashboard URL --artifact-dir DIR`) serves, and
the best model, its predictions and the kept models are plain files there.

A study created with `--artifacts URL` records the URL (`StudyKey.ARTIFACTS`), and everything a
later command needs goes through that store as artifacts of the trial that made it: the
curve, the best model with its test predictions and metadata, the kept front and top-K
models. Readers decide which model is the best from the trials in the storage, then fetch it
into the local files (a cache that can be deleted at any time). An artifact id is set on its
trial only after its upload finished, so a worker killed mid-upload leaves nothing a reader
would take.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from study.errors import StudyError
from study.store.artifact_store import check_store, normalize_url, open_store, store_error_reason
from study.store.record import ARTIFACT_DIR_NAME, StudyKey, TrialKey, best_by_accuracy, predictions_path
from study.store.storage import StorageLocation, best_model_paths


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
    return upload_file(store, trial, model_path, "application/zip")


def upload_file(store, trial, path: Path, mimetype: str) -> str:
    """Attach a file to its trial; returns the artifact id."""
    from optuna.artifacts import upload_artifact

    return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype=mimetype)


def given_url(flag: str | None) -> str | None:
    """`--artifacts` as it is recorded (absolute folder, or s3://BUCKET/PREFIX), or None."""
    return normalize_url(flag) if flag else None


def settle_store_url(attrs: dict, flag: str | None, study_name: str, location: StorageLocation) -> str | None:
    """The shared store of a study: the recorded one, which a `--artifacts` must match; None for a
    study without one (its files live beside the storage). A study not yet recorded (no
    settings; the run creating it records the URL before anything else) takes the given URL."""
    given = given_url(flag)
    recorded = attrs.get(StudyKey.ARTIFACTS)
    if recorded is None and StudyKey.TRAIN not in attrs:  # new, or being created by a worker beside this one
        return given
    if given is not None and given != recorded:
        if recorded:
            raise StudyError(f"--artifacts {given}: study '{study_name}' keeps its artifacts in {recorded}; "
                             "give that, or no --artifacts")
        raise StudyError(f"--artifacts {given}: study '{study_name}' was created without --artifacts; its files "
                         f"live beside the storage, in '{location.files_dir}'")
    return recorded


def open_checked(url: str):
    """The store at `url`, checked by writing, reading and removing a probe (before any trial)."""
    store = open_store(url)
    check_store(store, url)
    return store


def study_store(location: StorageLocation, attrs: dict, flag: str | None = None, study_name: str = ""):
    """(store, URL or None) for a command that reads a study: its recorded shared store (not
    probed: a reader may hold read-only credentials), else the folder beside the storage."""
    url = settle_store_url(attrs, flag, study_name, location) if attrs else given_url(flag)
    return (open_store(url), url) if url else (artifact_store(location), None)


def fetch(store, artifact_id: str, target: Path, url: str) -> None:
    """Download an artifact to `target`, atomically (a partial download never has the final name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with store.open_reader(artifact_id) as reader, open(partial, "wb") as out:
            while chunk := reader.read(1 << 20):
                out.write(chunk)
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise StudyError(f"artifact store {url}: cannot read artifact {artifact_id} ({store_error_reason(error)})") \
            from None
    os.replace(partial, target)


def fetch_best(location: StorageLocation, study_name: str, trials, store, url: str | None) -> bool:
    """Put the study's best model, its metadata and test predictions from a shared store into the
    local files (`best_model_paths`), unless they are already there; False when the study has no
    shared store or no trial uploaded a model. The best is the most accurate completed trial
    whose upload finished."""
    if url is None:
        return False
    uploaded = [t for t in trials if TrialKey.MODEL_ARTIFACT_ID in t.user_attrs
                and TrialKey.BEST_META_ARTIFACT_ID in t.user_attrs]
    best = best_by_accuracy(uploaded)
    if best is None:
        return False
    model_path, meta_path = best_model_paths(location, study_name)
    if meta_path.is_file() and model_path.is_file():
        try:
            if json.loads(meta_path.read_text(encoding="utf-8")).get("trial_number") == best.number:
                return True
        except ValueError:
            pass
    fetch(store, best.user_attrs[TrialKey.MODEL_ARTIFACT_ID], model_path, url)
    target = predictions_path(model_path)
    if TrialKey.PREDICTIONS_ARTIFACT_ID in best.user_attrs:
        fetch(store, best.user_attrs[TrialKey.PREDICTIONS_ARTIFACT_ID], target, url)
    else:
        target.unlink(missing_ok=True)
    fetch(store, best.user_attrs[TrialKey.BEST_META_ARTIFACT_ID], meta_path, url)  # last: it names the trial
    return True


def fetch_kept(trial, target: Path, store, url: str | None) -> bool:
    """Put a trial's kept model from a shared store at `target` unless it is there; False when none."""
    if target.is_file():
        return True
    if url is None or TrialKey.KEPT_MODEL_ARTIFACT_ID not in trial.user_attrs:
        return False
    fetch(store, trial.user_attrs[TrialKey.KEPT_MODEL_ARTIFACT_ID], target, url)
    return True


def stores_of_storage(location: StorageLocation, flag: str | None = None):
    """One store that reads the artifacts of every study in the storage: the folder beside it,
    each shared store a study recorded, and `--artifacts` (artifact ids are unique)."""
    import optuna

    from study.store.artifact_store import FirstThatHasIt
    from study.store.storage import open_storage

    urls = []
    for summary in optuna.get_all_study_summaries(open_storage(location)):
        url = summary.user_attrs.get(StudyKey.ARTIFACTS)
        if url and url not in urls:
            urls.append(url)
    given = given_url(flag)
    if given and given not in urls:
        urls.append(given)
    return FirstThatHasIt([artifact_store(location)] + [open_store(url) for url in urls]), urls
