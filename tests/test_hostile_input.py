"""Hostile and broken input: one line naming the thing, exit code 2, no traceback, storage untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest

from study.space.spec import load_space
from tests.commands import study_cli
from tests.conftest import SHARED_WEIGHTS, write_class_images


def snapshot(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return list(connection.iterdump())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with good images, a few broken inputs, and a storage holding one finished study."""
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    write_class_images(tmp_path / "one_class", {"only": 8})
    write_class_images(tmp_path / "too_few", {"a": 8, "b": 2})
    (tmp_path / "empty").mkdir()
    for name in ("a", "b"):
        (tmp_path / "corrupt" / name).mkdir(parents=True)
        (tmp_path / "corrupt" / name / "x.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "broken.toml").write_text("[params.head_depth\nrole = ")
    (tmp_path / "types.toml").write_text(load_space("default").text.replace("high = 5", "high = \"five\""))
    (tmp_path / "fake.h5").write_text("not weights")
    (tmp_path / "a_file").write_text("")
    study = optuna.create_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db",
                                direction="maximize")
    study.set_user_attr("space_name", "seed")
    study.set_user_attr("space_fingerprint", load_space("seed").fingerprint())
    study.add_trial(optuna.trial.create_trial(value=0.5))
    optuna.create_study(study_name="empty-study", storage=f"sqlite:///{tmp_path}/study.db")
    return tmp_path


RUN = ["run", "--weights", "none", "--alpha", "0.25", "--image-size", "32", "--epochs", "1"]
CASES = {
    "missing data folder": (RUN + ["--data", "nowhere"], "data folder 'nowhere' does not exist"),
    "empty data folder": (RUN + ["--data", "empty"], "data folder 'empty' has no class sub-folders"),
    "one class": (RUN + ["--data", "one_class"], "has one class ('only'); a classifier needs at least two"),
    "too few images": (RUN + ["--data", "too_few"], "class 'b' in 'too_few' has 2 readable images"),
    "only corrupt files": (RUN + ["--data", "corrupt"], "data folder 'corrupt' has no readable images (2 unreadable)"),
    "space not TOML": (RUN + ["--data", "images", "--space", "broken.toml"], "broken.toml: not valid TOML"),
    "space wrong type": (RUN + ["--data", "images", "--space", "types.toml"],
                         "types.toml: params.head_depth.high: expected an integer, got 'five'"),
    "malformed storage": (RUN + ["--data", "images", "--storage", "postgres:/x"], "storage URL 'postgres:/x' is not supported"),
    "study exists with another space": (RUN + ["--data", "images", "--space", "default"],
                                        "study 'images' exists with search space 'seed' that differs"),
    "evaluate without a completed trial": (["evaluate", "--data", "images", "--study-name", "empty-study"],
                                           "study 'empty-study' has no completed trial yet"),
    "missing weights file": (RUN + ["--data", "images", "--weights", "missing.h5"],
                             "weights file 'missing.h5' does not exist"),
    "weights not HDF5": (RUN + ["--data", "images", "--weights", "fake.h5"], "weights file 'fake.h5' is not an HDF5"),
    "report into a path that is a file": (["report", "--study-name", "images", "--out", "a_file"],
                                          "cannot use 'a_file"),
    "storage folder missing": (RUN + ["--data", "images", "--storage", "sqlite:///gone/x.db"],
                               "folder '"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_line_exit_2_and_leaves_the_storage_alone(workdir, case):
    args, message = CASES[case]
    before = snapshot(workdir / "study.db")
    result = study_cli(*args, cwd=workdir)
    assert result.returncode == 2, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("study: error: ") and message in last, last
    assert snapshot(workdir / "study.db") == before


def test_an_image_size_mobilenet_cannot_take_is_refused(workdir):
    result = study_cli(*RUN[:-4], "--data", "images", "--image-size", "16", cwd=workdir)
    assert result.returncode == 2
    assert "MobileNet needs at least 32 px, got '16'" in result.stderr.strip().splitlines()[-1]


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="shared MobileNet alpha 0.25 weights absent")
def test_weights_for_another_alpha(workdir):
    before = snapshot(workdir / "study.db")
    result = study_cli("run", "--data", "images", "--weights", str(SHARED_WEIGHTS), "--alpha", "0.5",
                       "--image-size", "32", cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "do not fit MobileNet alpha=0.5 at 32 px" in result.stderr.strip().splitlines()[-1]
    assert snapshot(workdir / "study.db") == before
