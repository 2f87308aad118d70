"""The command line end to end, in subprocesses, on SQLite in a temporary folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import TINY_RUN, study_cli
from tests.conftest import REPO, SMALL_SPACE, write_class_images


def trial_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT number, state FROM trials ORDER BY number").fetchall()


@pytest.mark.slow
def test_run_resume_then_evaluate(tmp_path):
    images = write_class_images(tmp_path / "images", {"비빔밥": 8, "김치": 8})
    first = study_cli("run", "--data", str(images), "--n-trials", "2", *TINY_RUN, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"storage: sqlite:///{tmp_path}/study.db" in first.stdout
    assert "[mn_resultset1]" in first.stdout and "[mn_resultset2]" in first.stdout
    assert (tmp_path / "images.best.keras").is_file()

    # The same command again: the study is complete, nothing new runs, the seven are not re-queued.
    again = study_cli("run", "--data", str(images), "--n-trials", "2", *TINY_RUN, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already has 2 finished trials" in again.stdout
    rows = trial_rows(tmp_path / "study.db")
    assert [state for _, state in rows].count("COMPLETE") == 2 and len(rows) == 7

    evaluated = study_cli("evaluate", "--data", str(images), "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert result["n_images"] == 16
    assert set(result["per_class"]) == {"비빔밥", "김치"}
    assert 0.0 <= result["accuracy"] <= 1.0

    other = write_class_images(tmp_path / "other", {"비빔밥": 2, "pizza": 2})
    mismatch = study_cli("evaluate", "--data", str(other), "--study-name", "images", cwd=tmp_path)
    assert mismatch.returncode == 2
    assert mismatch.stderr.strip().splitlines()[-1].startswith("study: error: class folder 'pizza'")
    assert "Traceback" not in mismatch.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--data", "missing-folder"], "data folder 'missing-folder' does not exist"),
    (["run", "--data", "images", "--space", "nope"], "search space not found"),
    (["run", "--data", "images", "--weights", "nowhere.h5"], "weights file 'nowhere.h5' does not exist"),
    (["run", "--data", "images", "--storage", "redis://u:pw@h/0"], "storage URL 'redis://u:***@h/0' is not supported"),
    (["evaluate", "--data", "images"], "no study 'images' in"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    if args[0] == "run" and "--weights" not in args:
        args = [*args, "--weights", "none"]
    result = study_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("study: error: ") and message in last_line


def test_bad_space_file_is_named(tmp_path):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "bad.toml").write_text("[params.head_depth]\nrole = \"scientific\"\nlow = 3\nhigh = 2\n")
    result = study_cli("run", "--data", "images", "--space", "bad.toml", "--weights", "none", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("study: error: bad.toml: params.head_depth.high: empty range: "
                                     "high (2) must be greater than low (3)")


def test_a_space_image_size_contradicting_the_flag_is_one_line_and_exit_2(tmp_path, image_folder):
    (tmp_path / "sized.toml").write_text(SMALL_SPACE + '[params.image_size]\nrole = "scientific"\nchoices = [32, 48]\n')
    result = study_cli("run", "--data", str(image_folder), "--space", "sized.toml", "--image-size", "64",
                       "--weights", "none", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("study: error: sized.toml: params.image_size: --image-size 64 contradicts the space "
                             "({32, 48}); drop --image-size or give one of its values\n")
    assert not (tmp_path / "study.db").exists()


@pytest.mark.parametrize("args, message", [
    (["--objectives", "macs"], "--objectives: the first objective is accuracy, got 'macs'"),
    (["--objectives", "accuracy,flops"], "--objectives: unknown objective 'flops'"),
    (["--objectives", "accuracy,macs,macs"], "--objectives: an objective is repeated"),
    (["--objectives", "accuracy,macs", "--engine", "keras-tuner"], "Keras Tuner searches one objective"),
    (["--space", "mobile", "--engine", "keras-tuner"], "mobile.toml: params.pooling: the keras-tuner engine"),
])
def test_bad_objectives_and_engine_combinations_are_one_line_and_exit_2(tmp_path, image_folder, args, message):
    result = study_cli("run", "--data", str(image_folder), "--weights", "none", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_python_m_study_leaves_what_its_command_made_to_the_exit_uncollected(tmp_path):
    """The collector is frozen after the command (the interpreter's last collections walked
    TensorFlow's objects for ~1.1 s; benchmarks/command_exit.py), and the exit code is the command's."""
    code = ("import atexit, gc, runpy, sys; atexit.register(lambda: print('frozen:', gc.get_freeze_count())); "
            "sys.argv = ['study', 'report', '--study-name', 'nope']; runpy.run_module('study', run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "no study 'nope'" in result.stderr
    assert int(result.stdout.split("frozen:")[1]) > 0
