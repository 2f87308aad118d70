"""Shared fixtures: tiny generated image folders, paths to the optional shared data."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
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
    """`python -m study demo`, run once per test session: a real 11-trial study with its report,
    best model, artifacts and notes, read by every test that needs a finished study of that shape.
    Readers must not write to it (copy the folder first).

    The suite runs in several pytest-xdist workers; each has its own session, so the first worker
    to ask runs the demo under a file lock in the run's shared temporary folder and the others
    read what it left there."""
    return run_once(tmp_path_factory, "demo", run_demo)


def run_demo(root: Path) -> DemoRun:
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(root))  # the demo's folder goes here
    result = subprocess.run([sys.executable, "-m", "study", "demo"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = root.glob("study-demo-*")
    return DemoRun(result, folder)


def run_once(tmp_path_factory, name: str, make):
    """`make(folder)` once per test run however many xdist workers ask; its pickled result after.

    A failure is kept too, so every asking worker fails with it instead of running it again."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common parent
    folder, done = shared / f"once-{name}", shared / f"once-{name}.pickle"
    with FileLock(str(shared / f"once-{name}.lock")):
        if not done.exists():
            folder.mkdir(exist_ok=True)
            try:
                outcome = ("ok", make(folder))
            except BaseException as error:  # noqa: BLE001 - re-raised in every worker below
                outcome = ("failed", f"{type(error).__name__}: {error}")
            done.write_bytes(pickle.dumps(outcome))
    status, value = pickle.loads(done.read_bytes())
    if status != "ok":
        pytest.fail(f"the shared {name} run failed: {value}")
    return value
