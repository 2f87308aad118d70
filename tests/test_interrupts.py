"""Ctrl-C and SIGTERM are recorded and acted on at safe points, never lost inside a finalizer."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

# A signal that arrives while an object's __del__ runs (TensorFlow runs many during fit) turns
# into an exception Python can only print as "Exception ignored": the stop request is lost.
SCRIPT = """
import os, signal, sys, time
from study import interrupts

class Finalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.{signal})
        time.sleep(0.2)  # the handler runs here, inside __del__

interrupts.install()
deferred = sys.argv[1] == "deferred"
try:
    if deferred:
        with interrupts.deferred():
            Finalizer()
            print("after the finalizer", flush=True)
            interrupts.raise_if_requested()
    else:
        Finalizer()
        print("after the finalizer", flush=True)
    print("not stopped")
except KeyboardInterrupt:
    print("stopped")
"""


def run(mode: str, signal_name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", SCRIPT.format(signal=signal_name), mode], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_signal_inside_a_finalizer_is_lost_when_raised_at_once():
    result = run("immediate", "SIGINT")
    assert "Exception ignored" in result.stderr and "KeyboardInterrupt" in result.stderr
    assert result.stdout.split() == ["after", "the", "finalizer", "not", "stopped"]


def test_a_deferred_signal_inside_a_finalizer_stops_at_the_next_check():
    for name in ("SIGINT", "SIGTERM"):
        result = run("deferred", name)
        assert "Exception ignored" not in result.stderr
        assert result.stdout.split() == ["after", "the", "finalizer", "stopped"], result.stderr
