"""Shared fixtures: tiny generated image folders, paths to the optional shared data."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_WEIGHTS = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
SHARED_FOOD10 = SHARED / "data" / "food10"


# A quick space for tests: small heads, no seeds.
SMALL_SPACE = """
[params.head_depth]
role = "scientific"
low = 1
high = 2
[params.dense_units]
role = "scientific"
low = 8
high = 32
[params.learning_rate]
role = "scientific"
low = 1e-4
high = 1e-1
log = true
[params.dropout]
role = "fixed"
value = 0.5
"""


def write_class_images(folder: Path, per_class: dict[str, int], size: int = 40, seed: int = 0,
                       fmt: str = "PNG") -> Path:
    """Write `per_class[name]` images per class: each class a distinct mean colour plus noise."""
    rng = np.random.default_rng(seed)
    for index, (name, count) in enumerate(per_class.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        colour = np.array([(index * 97) % 256, (index * 53 + 80) % 256, (index * 151 + 30) % 256])
        for number in range(count):
            noise = rng.integers(-40, 40, (size, size, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            suffix = {"PNG": "png", "JPEG": "jpg"}[fmt]
            Image.fromarray(pixels).save(folder / name / f"{name}_{number:03d}.{suffix}", fmt)
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three classes of 10 small PNG images each."""
    return write_class_images(tmp_path / "images", {"apple": 10, "banana": 10, "cherry": 10})


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, from STUDY_TEST_POSTGRES_URL (set by .ci/run)."""
    url = os.environ.get("STUDY_TEST_POSTGRES_URL")
    reason = "STUDY_TEST_POSTGRES_URL is not set" if not url else None
    if url:
        import sqlalchemy

        try:
            with sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5}).connect():
                pass
        except Exception as error:
            reason = f"cannot connect: {type(error).__name__}"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the PostgreSQL server that .ci/run starts ({reason})")
        pytest.skip(f"no PostgreSQL server reachable ({reason}); .ci/run starts one")
    return url


@dataclass(frozen=True)
class DemoRun:
    """What `python -m study demo` printed and the folder it left (its study `demo` in demo.db)."""

    result: subprocess.CompletedProcess
    folder: Path

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.folder / 'demo.db'}"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """`python -m study demo`, run once per test run: a real 11-trial study with its report, best
    model, artifacts and notes, read by every test that needs a finished study of that shape.
    Readers must not write to it (copy the folder first).

    The demo is the longest single piece of the suite, so it starts in the background as soon as
    a worker has collected a test that needs it (`pytest_collection_finish`), beside the other
    tests instead of before them; this fixture waits for it."""
    folder, done = start_demo(tmp_path_factory)
    deadline = time.monotonic() + DEMO_TIMEOUT + 60
    while not done.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the shared demo run left no result in {DEMO_TIMEOUT + 60} s")
        time.sleep(0.5)
    result = pickle.loads(done.read_bytes())
    if isinstance(result, str):
        pytest.fail(f"the shared demo run failed: {result}")
    assert result.returncode == 0, result.stderr[-3000:]
    (study_folder,) = folder.glob("study-demo-*")
    return DemoRun(result, study_folder)


DEMO_TIMEOUT = 900
# Runs the demo and pickles its CompletedProcess (or why it failed) to argv[2], atomically.
DEMO_RUNNER = """
import os, pickle, subprocess, sys
folder, out = sys.argv[1], sys.argv[2]
try:
    result = subprocess.run([sys.executable, "-m", "study", "demo"], cwd=folder, capture_output=True, text=True,
                            timeout=float(sys.argv[3]))
except Exception as error:
    result = f"{type(error).__name__}: {error}"
with open(out + ".part", "wb") as handle:
    pickle.dump(result, handle)
os.replace(out + ".part", out)
"""


def shared_folder(tmp_path_factory) -> Path:
    """The folder every xdist worker of this test run sees (each has its own base below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def start_demo(tmp_path_factory) -> tuple[Path, Path]:
    """Start the shared demo in the background unless a worker already did: (its folder, the
    file its result will be in)."""
    from filelock import FileLock

    shared = shared_folder(tmp_path_factory)
    folder, done = shared / "demo", shared / "demo.pickle"
    with FileLock(str(shared / "demo.lock")):
        if not folder.exists():
            folder.mkdir()
            env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(folder))  # the demo's folder goes here
            subprocess.Popen([sys.executable, "-c", DEMO_RUNNER, str(folder), str(done), str(DEMO_TIMEOUT)],
                             cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder, done


def pytest_collection_finish(session):
    factory = getattr(session.config, "_tmp_path_factory", None)
    if session.config.option.collectonly or factory is None:
        return
    if any("demo_run" in getattr(item, "fixturenames", ()) for item in session.items):
        start_demo(factory)


def run_once(tmp_path_factory, name: str, make):
    """`make(folder)` once per test run however many xdist workers ask; its pickled result after.

    A failure is kept too, so every asking worker fails with it instead of running it again."""
    from filelock import FileLock

    shared = shared_folder(tmp_path_factory)
    folder, done = shared / f"once-{name}", shared / f"once-{name}.pickle"
    with FileLock(str(shared / f"once-{name}.lock")):
        if not done.exists():
            folder.mkdir(exist_ok=True)
            try:
                outcome = ("ok", make(folder))
            except Exception as error:  # noqa: BLE001 - re-raised in every worker below
                outcome = ("failed", f"{type(error).__name__}: {error}")
            done.write_bytes(pickle.dumps(outcome))
    status, value = pickle.loads(done.read_bytes())
    if status != "ok":
        pytest.fail(f"the shared {name} run failed: {value}")
    return value


@dataclass(frozen=True)
class ConfirmedStudy:
    """A finished tiny study `tiny_study` (the seven and one searched trial, 2 epochs each, classes
    whose names need escaping and a Korean font) confirmed on a held-out folder: its folder and
    what `confirm` printed. Readers copy the folder before they write (`copy_to`)."""

    folder: Path
    confirm: subprocess.CompletedProcess

    CLASSES = ("짜장면", "pizza|slice")
    CONFIRM = ("confirm", "--study-name", "tiny_study", "--top", "1", "--seeds", "2", "--epochs", "4",
               "--patience", "1", "--holdout", "held")

    def copy_to(self, folder: Path) -> Path:
        """A private copy of the study's folder to write into; paths recorded in its storage still
        name the shared folder, which the copy's commands only read."""
        import shutil

        return Path(shutil.copytree(self.folder, folder))


def make_confirmed_study(folder: Path) -> ConfirmedStudy:
    from tests.commands import study_cli

    tiny = ["--weights", "none", "--alpha", "0.25", "--image-size", "32", "--batch-size", "8", "--no-augment"]
    write_class_images(folder / "images", dict.fromkeys(ConfirmedStudy.CLASSES, 8), seed=1)
    write_class_images(folder / "held", dict.fromkeys(ConfirmedStudy.CLASSES, 6), seed=2)
    run = study_cli("run", "--data", "images", "--study-name", "tiny_study", "--space", "default", "--n-trials", "8",
                    "--epochs", "2", *tiny, cwd=folder)
    if run.returncode != 0:
        raise RuntimeError(f"run exited with {run.returncode}: {run.stderr[-2000:]}")
    confirm = study_cli(*ConfirmedStudy.CONFIRM, cwd=folder)
    if confirm.returncode != 0:
        raise RuntimeError(f"confirm exited with {confirm.returncode}: {confirm.stderr[-2000:]}")
    return ConfirmedStudy(folder, confirm)


@pytest.fixture(scope="session")
def confirmed_study(tmp_path_factory) -> ConfirmedStudy:
    """Run and confirmed once per test run, read by the confirm and report tests."""
    return run_once(tmp_path_factory, "confirmed", make_confirmed_study)


def pytest_collection_modifyitems(config, items):
    """Files with the most slow tests first, the others after, each file's own order kept.

    Each xdist worker takes whole files in this order, so the long files start early and the
    short ones fill in at the end instead of one long file running alone while the other
    workers wait."""
    def file_of(item) -> str:
        return item.nodeid.split("::")[0]

    slow: dict[str, int] = {}
    for item in items:
        slow[file_of(item)] = slow.get(file_of(item), 0) + bool(item.get_closest_marker("slow"))
    first = {name: index for index, name in enumerate(dict.fromkeys(map(file_of, items)))}
    items.sort(key=lambda item: (-slow[file_of(item)], first[file_of(item)]))
