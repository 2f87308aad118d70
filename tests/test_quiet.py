"""Quiet output: TensorFlow's native lines filtered off fd 2, the live trial line, no warnings."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from study.quiet import is_native_log_line
from tests.commands import TINY_RUN
from tests.conftest import REPO, write_class_images

NATIVE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1795939654.201450   19662 port.cc:153] oneDNN custom operations are on.",
    b"E0000 00:00:1795939656.549664   19662 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    b"W0000 00:00:1795939656.549664   19662 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
    b"2024-03-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    b"appropriate compiler flags.",
]
KEPT = [
    b"F0000 00:00:1795939656.549664   19662 check.cc:12] Check failed: a crash must stay visible",
    b"study: error: data folder 'x' has no class sub-folders",
    b"/a/b.py:3: UserWarning: something of the user's",
    b"trial   0 COMPLETE  val 0.5000",
]


def test_native_log_lines_are_recognised_and_nothing_else():
    assert all(is_native_log_line(line) for line in NATIVE)
    assert not any(is_native_log_line(line) for line in KEPT)


FILTERED_CHILD = """
import os, sys
from study.quiet import filter_native_stderr
filter_native_stderr()
for line in sys.argv[1:]:
    os.write(2, line.encode() + b"\\n")  # as TensorFlow's C++ side does, below Python
print("python-level line", file=sys.stderr)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_the_fd_filter_drops_native_lines_of_this_process_unless_verbose(verbose):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("STUDY_VERBOSE", None)
    if verbose:
        env["STUDY_VERBOSE"] = "1"
    lines = [line.decode() for line in NATIVE + KEPT]
    child = subprocess.run([sys.executable, "-c", FILTERED_CHILD, *lines], env=env, capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0
    expected = lines + ["python-level line"] if verbose else [line.decode() for line in KEPT] + ["python-level line"]
    assert child.stderr.splitlines() == expected


def test_a_tiny_run_prints_no_native_line_and_no_warning(tmp_path):
    images = write_class_images(tmp_path / "images", {"a": 6, "b": 6})
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("TF_CPP_MIN_LOG_LEVEL", "STUDY_VERBOSE", "PYTHONWARNINGS"):
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-m", "study", "run", "--data", str(images), "--n-trials", "1",
                          *TINY_RUN], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert "COMPLETE" in run.stdout and "Warning" not in run.stdout


def test_the_live_line_shows_epoch_validation_accuracy_and_seconds_then_goes():
    from rich.console import Console

    from study.search.progress import LiveTrialLine

    screen = io.StringIO()
    line = LiveTrialLine(enabled=True, console=Console(file=screen, force_terminal=True, width=100))
    line.start(7, epochs=3)
    line.epoch(2, 0.61234)
    line.stop()
    drawn = screen.getvalue()
    assert "trial   7 training" in drawn and "epoch 2/3" in drawn and "val 0.6123" in drawn
    assert " s" in drawn


def test_the_live_line_is_off_when_output_is_not_a_terminal(capsys):
    from study.search.progress import LiveTrialLine

    line = LiveTrialLine()  # pytest's captured stdout is not a terminal
    line.start(1, epochs=2)
    line.epoch(1, 0.5)
    line.stop()
    assert not line.enabled and capsys.readouterr().out == ""
