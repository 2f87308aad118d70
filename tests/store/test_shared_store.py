"""A study across machines: run --artifacts puts everything later commands need in one store.

The S3 tests talk HTTP to moto's standalone server (started here on a free loopback port;
boto3 is not patched), the many-machine scenario also to the PostgreSQL server of .ci/run.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

from study.errors import StudyError
from study.store.artifact_store import ArtifactStoreError, normalize_url, split_s3_url
from study.store.artifacts import fetch, fetch_best, settle_store_url, upload_file
from study.store.record import StudyKey, TrialKey
from study.store.storage import StorageLocation
from tests.conftest import REPO, SMALL_SPACE, write_class_images

SECRET = "study-test-secret-4711-never-shown"
TINY = ["--weights", "none", "--alpha", "0.25", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--no-augment"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a free loopback port, for the session."""
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto's S3 server did not start")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def aws_env(endpoint: str, **changes) -> dict:
    """The standard AWS environment of a machine that reaches the test server (no config files)."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="study-test-key", AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"studies-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="study-test-key", aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=name)
    return name


def study_cmd(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def photos(folder: Path) -> Path:
    """The same photos on every machine (generated with one seed)."""
    write_class_images(folder / "images", {"a": 12, "b": 12}, size=32)
    (folder / "small.toml").write_text("n_trials = 4\n" + SMALL_SPACE)
    return folder


def test_a_store_is_a_folder_or_an_s3_url_that_holds_no_credentials(tmp_path):
    assert normalize_url("s3://bucket/some/prefix/") == "s3://bucket/some/prefix"
    assert normalize_url("s3://bucket") == "s3://bucket"
    assert split_s3_url("s3://bucket/a/b") == ("bucket", "a/b")
    assert normalize_url(str(tmp_path / "store")) == str((tmp_path / "store").resolve())
    for bad in ("s3://KEY:SECRET@bucket/x", "s3:///prefix", "gs://bucket/x", "s3://bucket/x?key=1"):
        with pytest.raises(ArtifactStoreError) as error:
            normalize_url(bad)
        assert "expected a folder path or s3://BUCKET/PREFIX" in str(error.value)


def test_a_study_keeps_the_store_it_was_created_with(tmp_path):
    location = StorageLocation("sqlite:///x.db", tmp_path)
    assert settle_store_url({}, "s3://b/p", "food", location) == "s3://b/p"  # a new study takes it
    assert settle_store_url({}, None, "food", location) is None
    recorded = {StudyKey.TRAIN: {}, StudyKey.ARTIFACTS: "s3://b/p"}
    assert settle_store_url(recorded, None, "food", location) == "s3://b/p"  # later commands find it
    assert settle_store_url(recorded, "s3://b/p/", "food", location) == "s3://b/p"
    with pytest.raises(StudyError, match="study 'food' keeps its artifacts in s3://b/p"):
        settle_store_url(recorded, "s3://b/other", "food", location)
    with pytest.raises(StudyError, match="was created without --artifacts"):
        settle_store_url({StudyKey.TRAIN: {}}, "s3://b/p", "food", location)
    assert settle_store_url({StudyKey.TRAIN: {}}, None, "food", location) is None  # today's behaviour
    # a worker started beside the one creating the study sees the URL, recorded first, before the rest
    assert settle_store_url({StudyKey.ARTIFACTS: "s3://b/p"}, "s3://b/p", "food", location) == "s3://b/p"
    assert settle_store_url({StudyKey.OBJECTIVES: ["accuracy"]}, "s3://b/p", "food", location) == "s3://b/p"


def test_a_reader_takes_the_best_trial_whose_upload_finished(tmp_path):
    """A worker killed during its upload sets no metadata id: readers pass over its trial."""
    from optuna.artifacts import FileSystemArtifactStore

    store = FileSystemArtifactStore(str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    study = optuna.create_study(direction="maximize")
    location = StorageLocation("sqlite:///unused.db", tmp_path / "reader")
    for number, value, finished in ((0, 0.8, True), (1, 0.9, False)):
        trial = study.ask()
        model = tmp_path / f"model{number}.keras"
        model.write_bytes(f"model of trial {number}".encode())
        meta = tmp_path / f"meta{number}.json"
        meta.write_text(json.dumps({"trial_number": number}))
        trial.set_user_attr(TrialKey.MODEL_ARTIFACT_ID, upload_file(store, trial, model, "application/zip"))
        if finished:
            trial.set_user_attr(TrialKey.BEST_META_ARTIFACT_ID, upload_file(store, trial, meta, "application/json"))
        study.tell(trial, value)
    assert fetch_best(location, "food", study.trials, store, "s3://b/p")
    assert (location.files_dir / "food.best.keras").read_bytes() == b"model of trial 0"
    assert json.loads((location.files_dir / "food.best.json").read_text())["trial_number"] == 0
    assert not fetch_best(location, "food", study.trials, store, None)  # no shared store: local files only


def test_a_download_that_fails_leaves_no_file_and_one_line(tmp_path):
    class Breaks:
        def open_reader(self, artifact_id):
            class Reader(io.BytesIO):
                def read(self, size=-1):
                    if self.tell() > 0:
                        raise ConnectionError("connection reset")
                    return super().read(4)

            return Reader(b"partial model bytes")

    target = tmp_path / "food.best.keras"
    with pytest.raises(StudyError) as error:
        fetch(Breaks(), "abc", target, "s3://b/p")
    assert "\n" not in str(error.value) and "s3://b/p" in str(error.value) and "connection reset" in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_unreachable_store_is_refused_in_one_line_before_any_trial(tmp_path, s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    photos(tmp_path)
    storage = f"sqlite:///{tmp_path}/study.db"
    cases = [("no bucket", f"s3://{bucket}-missing/p", aws_env(s3_endpoint), "no such bucket"),
             ("no endpoint", f"s3://{bucket}/p", aws_env(f"http://127.0.0.1:{free_port()}"),
              "cannot reach the endpoint"),
             ("no credentials", f"s3://{bucket}/p",
              aws_env(s3_endpoint, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None), "no AWS credentials")]
    for what, url, env, cause in cases:
        result = study_cmd("run", "--data", "images", "--space", "small.toml", *TINY, "--storage", storage,
                           "--artifacts", url, "--study-name", what.replace(" ", "-"), cwd=tmp_path, env=env)
        assert result.returncode == 2, (what, result.stderr[-2000:])
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"study: error: --artifacts {url}: ") and cause in line, (what, line)
        assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "study.db").exists()  # no study, let alone a trial


@pytest.mark.slow
def test_a_folder_store_serves_the_report_and_the_export_once_the_run_folder_is_gone(tmp_path):
    run = photos(tmp_path / "machine-1")
    store, storage = tmp_path / "store", f"sqlite:///{tmp_path}/study.db"
    env = aws_env("http://127.0.0.1:9")
    result = study_cmd("run", "--data", "images", "--space", "small.toml", *TINY, "--n-trials", "2", "--storage",
                       storage, "--artifacts", str(store), "--study-name", "food", cwd=run, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    study = optuna.load_study(study_name="food", storage=storage)
    assert study.user_attrs[StudyKey.ARTIFACTS] == str(store.resolve())
    for local in tmp_path.glob("food.*"):  # the local copies beside the storage are only caches
        shutil.rmtree(local) if local.is_dir() else local.unlink()
    shutil.rmtree(tmp_path / "image-cache")
    shutil.rmtree(run)
    elsewhere = tmp_path / "laptop"
    elsewhere.mkdir()
    report = study_cmd("report", "--study-name", "food", "--storage", storage, cwd=elsewhere, env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "## Where the best model fails" in (elsewhere / "reports" / "food" / "README.md").read_text()
    assert (elsewhere / "reports" / "food" / "figures" / "confusion_matrix.png").is_file()
    export = study_cmd("export-model", "--study-name", "food", "--storage", storage, "--format", "keras", "--out",
                       "m.keras", cwd=elsewhere, env=env)
    assert export.returncode == 0, export.stderr[-2000:]
    assert (elsewhere / "m.keras").stat().st_size > 0
    assert "test accuracy: not measured: the study's images are not at" in export.stdout
    other = study_cmd("report", "--study-name", "food", "--storage", storage, "--artifacts", str(tmp_path / "x"),
                      cwd=elsewhere, env=env)
    assert other.returncode == 2 and other.stderr.strip().splitlines() == [
        f"study: error: --artifacts {tmp_path / 'x'}: study 'food' keeps its artifacts in {store.resolve()}; "
        "give that, or no --artifacts"]


@pytest.mark.slow
def test_two_machines_fill_one_study_and_a_third_reads_everything_from_the_store(tmp_path, s3_endpoint,
                                                                               postgres_url, monkeypatch):
    """PostgreSQL plus S3: two runs in two folders, both deleted; an empty third folder reports,
    exports and serves the artifacts. No secret anywhere."""
    bucket = new_bucket(s3_endpoint)
    url, name, env = f"s3://{bucket}/food/search", f"shared-{uuid.uuid4().hex[:8]}", aws_env(s3_endpoint)
    outputs = []
    for machine, total in (("machine-1", "2"), ("machine-2", "4")):
        folder = photos(tmp_path / machine)
        result = study_cmd("run", "--data", "images", "--space", "small.toml", *TINY, "--n-trials", total,
                           "--storage", postgres_url, "--artifacts", url, "--study-name", name,
                           "--heartbeat-interval", "5", cwd=folder, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"artifacts: {url}" in result.stdout
        outputs.append(result.stdout + result.stderr)
        shutil.rmtree(folder)  # the machine and everything on it is gone

    laptop = tmp_path / "laptop"
    laptop.mkdir()
    report = study_cmd("report", "--study-name", name, "--storage", postgres_url, cwd=laptop, env=env)
    assert report.returncode == 0, report.stderr[-2000:]
    page = (laptop / "reports" / name / "README.md").read_text(encoding="utf-8")
    assert "## Where the best model fails" in page and "confusion_matrix.png" in page
    export = study_cmd("export-model", "--study-name", name, "--storage", postgres_url, "--format", "keras",
                       "--out", "best.keras", cwd=laptop, env=env)
    assert export.returncode == 0, export.stderr[-2000:]
    assert (laptop / "best.keras").stat().st_size > 0
    outputs += [report.stdout + report.stderr, export.stdout + export.stderr]

    study = optuna.load_study(study_name=name, storage=postgres_url)
    assert study.user_attrs[StudyKey.ARTIFACTS] == url and len(study.trials) == 4
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    from study.store.dashboard import dashboard_app
    from study.store.storage import resolve_storage

    app, urls = dashboard_app(resolve_storage(postgres_url, laptop))
    assert url in urls
    trial = next(t for t in study.trials if TrialKey.MODEL_ARTIFACT_ID in t.user_attrs)
    artifact = trial.user_attrs[TrialKey.MODEL_ARTIFACT_ID]
    status, body = wsgi_get(app, f"/artifacts/{study._study_id}/{trial._trial_id}/{artifact}")
    assert status.startswith("200") and body[:2] == b"PK"  # a .keras file is a zip

    stored = json.dumps([study.user_attrs] + [[t.user_attrs, t.system_attrs] for t in study.trials], default=str)
    written = "".join(p.read_text(errors="replace") for p in (laptop / "reports").rglob("*") if p.is_file())
    for text in outputs + [stored, written]:
        assert SECRET not in text and "study-test-key" not in text


def wsgi_get(app, path: str) -> tuple[str, bytes]:
    """GET `path` from a WSGI app in this process: (status line, body)."""
    from wsgiref.util import setup_testing_defaults

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status

    body = b"".join(app(environ, start_response))
    return answer["status"], body
