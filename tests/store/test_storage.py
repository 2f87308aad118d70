"""Storage URLs: the SQLite default, passwords masked, bad URLs refused in one line."""

from __future__ import annotations

import fcntl

import optuna
import pytest

from study.errors import StorageError
from study.store.storage import (
    best_model_paths,
    claim_single_writer,
    exclusive_section,
    mask_password,
    open_storage,
    resolve_storage,
    study_file_stem,
)


def test_default_is_study_db_in_the_working_folder(tmp_path):
    location = resolve_storage(None, tmp_path)
    assert location.url == f"sqlite:///{tmp_path}/study.db"
    assert location.files_dir == tmp_path


def test_relative_sqlite_paths_resolve_against_the_working_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    assert resolve_storage("sqlite:///runs/a.db", tmp_path).files_dir == tmp_path / "runs"


def test_passwords_are_masked():
    url = "postgresql://optuna:s3cr3t@db.example:5432/studies"
    assert mask_password(url) == "postgresql://optuna:***@db.example:5432/studies"
    assert resolve_storage(url).display == "postgresql://optuna:***@db.example:5432/studies"
    assert mask_password("sqlite:///study.db") == "sqlite:///study.db"


@pytest.mark.parametrize("url, message", [
    ("redis://host/0", "is not supported"),
    ("sqlite://", "names no file"),
    ("journal://", "names no file"),
    ("postgresql://user:pw@/studies", "needs a host and a database name"),
    ("postgresql://user:pw@host", "needs a host and a database name"),
    ("postgresql://user:pw@host:port/db", "has an invalid port"),
    ("sqlite:////no/such/folder/x.db", "folder '/no/such/folder' does not exist"),
])
def test_bad_urls_are_refused(url, message):
    with pytest.raises(StorageError, match=message):
        resolve_storage(url)


def test_unsupported_url_never_shows_the_password():
    with pytest.raises(StorageError) as error:
        resolve_storage("ftp://user:hunter2@host/x")
    assert "hunter2" not in str(error.value)


def test_study_files_get_safe_distinct_names(tmp_path):
    assert study_file_stem("food10") == "food10"
    assert study_file_stem("a/b") != study_file_stem("a_b")
    model, meta = best_model_paths(resolve_storage(None, tmp_path), "음식 study")
    assert model.parent == tmp_path and model.name.endswith(".best.keras") and meta.suffix == ".json"


def test_journal_files_live_beside_the_journal(tmp_path):
    location = resolve_storage(f"journal:///{tmp_path}/runs.log")
    assert location.scheme == "journal" and location.files_dir == tmp_path
    assert location.local_file == tmp_path / "runs.log"


def test_a_second_writer_on_one_sqlite_file_is_refused(tmp_path):
    location = resolve_storage("sqlite:///study.db", tmp_path)
    claim_single_writer(location)
    with pytest.raises(StorageError, match="SQLite is not safe for parallel workers: use --storage postgresql"):
        claim_single_writer(location)
    claim_single_writer(resolve_storage("sqlite:///other.db", tmp_path))  # another file is fine


def test_journal_exclusive_section_serialises(tmp_path):
    location = resolve_storage(f"journal:///{tmp_path}/j.log")
    storage = open_storage(location)
    with exclusive_section(location, None, "seeds"):
        with open(tmp_path / "j.log.section.lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a second worker waits here
        # Optuna's journal lock is the existence of `j.log.lock`: the section must not create it,
        # or writes inside and after it wait out Optuna's 30 s grace period.
        assert not (tmp_path / "j.log.lock").exists()
        optuna.create_study(study_name="seeds", storage=storage).enqueue_trial({"x": 1})
    assert not (tmp_path / "j.log.lock").exists()
    assert len(optuna.load_study(study_name="seeds", storage=storage).trials) == 1


def test_threads_of_one_run_never_take_the_same_queued_trial(tmp_path):
    # `run --jobs`: SQLite cannot lock the row between reading WAITING and setting RUNNING.
    import threading

    from optuna.trial import TrialState

    storage = open_storage(resolve_storage(f"sqlite:///{tmp_path}/s.db"))
    study = optuna.create_study(storage=storage, study_name="s")
    for rounds in range(5):
        study.enqueue_trial({"x": rounds})
        (queued,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        start = threading.Barrier(6)
        taken = []

        def take() -> None:
            start.wait()
            taken.append(storage.set_trial_state_values(queued._trial_id, TrialState.RUNNING))

        threads = [threading.Thread(target=take) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(taken) == [False] * 5 + [True]
        storage.set_trial_state_values(queued._trial_id, TrialState.COMPLETE, [0.0])
