"""Storage URLs: the SQLite default, passwords masked, bad URLs refused in one line."""

from __future__ import annotations

import pytest

from study.errors import StorageError
from study.storage import best_model_paths, mask_password, resolve_storage, study_file_stem


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
    ("sqlite://", "names no database file"),
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
