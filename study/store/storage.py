"""Storage URLs: SQLite in the working folder by default; PostgreSQL or a journal file for many workers.

Also decides where a study's files live beside its storage (the best model and its class
names), keeps a second local process off a SQLite file, serialises the enqueueing of seed
configurations between workers, and masks passwords wherever a URL is shown.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from study.errors import StorageError
from study.store.record import BEST_META_SUFFIX, BEST_MODEL_SUFFIX, FRONT_DIR_SUFFIX, TOP_DIR_SUFFIX

DEFAULT_STORAGE = "sqlite:///study.db"  # embedded, needs no server; one worker at a time
SCHEMES = ("sqlite", "postgresql", "mysql", "journal")
DEFAULT_HEARTBEAT_SECONDS = 60  # a dead worker's trial is failed and retried after ~2 minutes
TABLE_CREATION_ATTEMPTS = 5
EXPECTED_FORMS = "sqlite:///FILE.db, postgresql://USER:PASSWORD@HOST[:PORT]/DB or journal:///PATH/FILE.log"


@dataclass(frozen=True)
class StorageLocation:
    """A checked storage URL and the folder where the study's files are kept."""

    url: str
    files_dir: Path  # beside a SQLite or journal file, else the working folder

    @property
    def display(self) -> str:
        return mask_password(self.url)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.split("+")[0]

    @property
    def local_file(self) -> Path | None:
        """The database or journal file for file-based storages."""
        if self.scheme in ("sqlite", "journal"):
            return Path(self.url.split(":///", 1)[1])
        return None


def mask_password(text: str) -> str:
    """`text` with the password of any URL in it replaced by `***`."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def resolve_storage(url: str | None, working_dir: Path | None = None) -> StorageLocation:
    """Check a storage URL (default `sqlite:///study.db`) and find its files folder."""
    url = url or DEFAULT_STORAGE
    working_dir = Path(working_dir or Path.cwd())
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise StorageError(f"storage URL '{mask_password(url)}' is not supported (expected {EXPECTED_FORMS})")
    if scheme in ("sqlite", "journal"):
        path_text = url.split(":///", 1)[1] if ":///" in url else ""
        if not path_text or path_text == ":memory:":
            raise StorageError(f"storage URL '{url}' names no file (expected {EXPECTED_FORMS})")
        path = Path(path_text)
        if not path.is_absolute():
            path = working_dir / path
        if not path.parent.is_dir():
            raise StorageError(f"storage URL '{url}': folder '{path.parent}' does not exist")
        return StorageLocation(f"{scheme}:///{path}", path.parent)
    if not parts.hostname or not parts.path.strip("/"):
        raise StorageError(f"storage URL '{mask_password(url)}' needs a host and a database name "
                           f"(expected {EXPECTED_FORMS})")
    try:
        parts.port
    except ValueError:
        raise StorageError(f"storage URL '{mask_password(url)}' has an invalid port") from None
    return StorageLocation(url, working_dir)


@contextlib.contextmanager
def experimental_features_accepted():
    """Optuna's heartbeats and their retry callback are experimental; we use them on purpose,
    so their warnings are noise (shown with `--verbose`)."""
    from study.quiet import is_verbose

    with warnings.catch_warnings():
        if not is_verbose():
            import optuna

            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@functools.cache
def rdb_storage_class():
    """Optuna's RDBStorage, with a trial's state changed by one thread of this process at a time.

    Optuna takes a queued trial (the seven) by reading that it is WAITING and then setting it
    RUNNING; PostgreSQL and MySQL lock the row between the two (SELECT ... FOR UPDATE), SQLite
    cannot, so two threads of `run --jobs` could both take the same trial. Across processes
    SQLite is never shared (`claim_single_writer`), so a lock in the process is enough.
    """
    import threading

    import optuna

    class RDBStorage(optuna.storages.RDBStorage):
        _state_lock = threading.Lock()

        def set_trial_state_values(self, trial_id, state, values=None):
            with self._state_lock:
                return super().set_trial_state_values(trial_id, state, values)

    return RDBStorage


def open_storage(location: StorageLocation, heartbeat_seconds: int | None = None):
    """An Optuna storage for the location; failures become one-line StorageErrors.

    With `heartbeat_seconds` (RDB storages only), running trials send heartbeats, and a trial
    whose worker died is failed after two missed intervals and queued once more.
    """
    import optuna

    if location.scheme == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(location.local_file)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        except OSError as error:
            raise StorageError(f"cannot open storage '{location.display}': {error.strerror or error}") from None
    engine_kwargs = {}
    if location.scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a writer rather than fail
    elif location.scheme == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    for attempt in range(TABLE_CREATION_ATTEMPTS):
        try:
            with experimental_features_accepted():
                heartbeat = {}
                if heartbeat_seconds:
                    heartbeat = {
                        "heartbeat_interval": heartbeat_seconds,
                        "grace_period": 2 * heartbeat_seconds,
                        "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                    }
                return rdb_storage_class()(location.url, engine_kwargs=engine_kwargs, **heartbeat)
        except Exception as error:
            # Workers starting together on a new database race to create Optuna's tables; the
            # losers see "already exists" or a duplicate key, and find the tables on a retry.
            racing = any(text in str(error) for text in ("already exists", "duplicate key", "UNIQUE constraint"))
            if not racing or attempt == TABLE_CREATION_ATTEMPTS - 1:
                raise StorageError(f"cannot open storage '{location.display}': {short_reason(error)}") from None
            time.sleep(0.5 + random.random())


def load_study(location: StorageLocation, study_name: str, storage=None):
    """An existing study, or a StorageError listing the studies the storage holds.

    `storage` is an already opened storage of `location`, to share one connection pool.
    """
    import optuna

    storage = storage or open_storage(location)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise StorageError(f"no study '{study_name}' in '{location.display}' (studies: {names})") from None


def short_reason(error: BaseException) -> str:
    """The first informative line of a (database driver) error, password masked."""
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    if "password authentication failed" in str(original):
        text = "password authentication failed (check the user and password in the URL)"
    return mask_password(text)


_held_locks: list = []  # open lock files, held until the process exits


def claim_single_writer(location: StorageLocation) -> None:
    """Refuse a second local `run` on one SQLite file: SQLite is not safe for parallel workers."""
    if location.scheme != "sqlite":
        return
    lock_path = location.local_file.with_name(location.local_file.name + ".lock")
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StorageError(
            f"another `study run` is using '{location.display}'; SQLite is not safe for parallel workers: "
            "use --storage postgresql://USER:PASSWORD@HOST/DB or --storage journal:///PATH/FILE.log"
        ) from None
    _held_locks.append(handle)


@contextlib.contextmanager
def exclusive_section(location: StorageLocation, storage, name: str):
    """Hold a lock shared by every worker of a storage while inside (e.g. to enqueue seeds once).

    PostgreSQL: a session advisory lock; journal file: a lock file beside it; SQLite needs
    none (one worker only); other databases: no lock.
    """
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    if location.scheme == "postgresql":
        from sqlalchemy import text

        with storage.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    elif location.scheme == "journal":
        # Not `<log>.lock`: Optuna's own journal lock is that file's existence, so a file of that
        # name left here would make every later journal write wait out Optuna's 30 s grace period.
        lock_path = location.local_file.with_name(location.local_file.name + ".section.lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def check_writable(folder: Path) -> None:
    """Raise StorageError unless files can be written in `folder`."""
    if not os.access(folder, os.W_OK):
        raise StorageError(f"folder '{folder}' is not writable (the best model is saved there)")


def study_file_stem(study_name: str) -> str:
    """A file-name-safe stem for a study's files; names that need changing get a hash suffix."""
    stem = re.sub(r"[^\w.-]+", "_", study_name, flags=re.UNICODE).strip("._") or "study"
    if stem != study_name:
        stem += "-" + hashlib.sha256(study_name.encode()).hexdigest()[:8]
    return stem


def front_models_dir(location: StorageLocation, study_name: str) -> Path:
    """Where the models of a study's front trials are kept (`trial-<K>.keras`)."""
    return location.files_dir / f"{study_file_stem(study_name)}{FRONT_DIR_SUFFIX}"


def top_models_dir(location: StorageLocation, study_name: str) -> Path:
    """Where `run --keep-top K` keeps the models of the K most accurate trials (`trial-<K>.keras`)."""
    return location.files_dir / f"{study_file_stem(study_name)}{TOP_DIR_SUFFIX}"


def best_model_paths(location: StorageLocation, study_name: str) -> tuple[Path, Path]:
    """(model .keras, metadata .json) paths of a study's best model."""
    stem = study_file_stem(study_name)
    return location.files_dir / f"{stem}{BEST_MODEL_SUFFIX}", location.files_dir / f"{stem}{BEST_META_SUFFIX}"
