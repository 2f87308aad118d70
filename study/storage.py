"""Storage URLs: SQLite in the working folder by default, any Optuna RDB URL for many workers.

Also decides where a study's files live beside its storage (the best model and its class
names), and masks passwords wherever a URL is shown.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from study.errors import StorageError

DEFAULT_STORAGE = "sqlite:///study.db"  # embedded, needs no server; one worker at a time
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


@dataclass(frozen=True)
class StorageLocation:
    """A checked storage URL and the folder where the study's files are kept."""

    url: str
    files_dir: Path  # beside the SQLite file, else the working folder

    @property
    def display(self) -> str:
        return mask_password(self.url)


def mask_password(url: str) -> str:
    """The URL with any password replaced by `***`."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def resolve_storage(url: str | None, working_dir: Path | None = None) -> StorageLocation:
    """Check a storage URL (default `sqlite:///study.db`) and find its files folder."""
    url = url or DEFAULT_STORAGE
    working_dir = Path(working_dir or Path.cwd())
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in RDB_SCHEMES:
        raise StorageError(
            f"storage URL '{mask_password(url)}' is not supported "
            "(expected sqlite:///FILE.db or postgresql://USER:PASSWORD@HOST/DB)"
        )
    if scheme == "sqlite":
        path_text = url.split(":///", 1)[1] if ":///" in url else ""
        if not path_text or path_text == ":memory:":
            raise StorageError(f"storage URL '{url}' names no database file (expected sqlite:///FILE.db)")
        database = Path(path_text)
        if not database.is_absolute():
            database = working_dir / database
        if not database.parent.is_dir():
            raise StorageError(f"storage URL '{url}': folder '{database.parent}' does not exist")
        return StorageLocation(f"sqlite:///{database}", database.parent)
    return StorageLocation(url, working_dir)


def open_storage(location: StorageLocation):
    """An Optuna RDB storage for the URL; connection failures become one-line StorageErrors."""
    import optuna

    engine_kwargs = {}
    if location.url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a writer rather than fail
    try:
        return optuna.storages.RDBStorage(location.url, engine_kwargs=engine_kwargs)
    except Exception as error:
        reason = mask_password(str(error).splitlines()[0]) if str(error) else type(error).__name__
        raise StorageError(f"cannot open storage '{location.display}': {reason}") from None


def study_file_stem(study_name: str) -> str:
    """A file-name-safe stem for a study's files; names that need changing get a hash suffix."""
    stem = re.sub(r"[^\w.-]+", "_", study_name, flags=re.UNICODE).strip("._") or "study"
    if stem != study_name:
        stem += "-" + hashlib.sha256(study_name.encode()).hexdigest()[:8]
    return stem


def best_model_paths(location: StorageLocation, study_name: str) -> tuple[Path, Path]:
    """(model .keras, metadata .json) paths of a study's best model."""
    stem = study_file_stem(study_name)
    return location.files_dir / f"{stem}.best.keras", location.files_dir / f"{stem}.best.json"
