"""Running `python -m study` from tests: one command to the end, or one in the background."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tests.conftest import REPO

TINY_RUN = ["--space", "seed", "--weights", "none", "--alpha", "0.25", "--image-size", "32",
            "--epochs", "1", "--batch-size", "8", "--no-augment"]


def study_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def study_main_reporting_import(module: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`study.cli.main(args)` in a new interpreter that prints `<module> imported: True|False`
    after the command, and exits with the command's code."""
    code = ("import sys; from study.cli import main; code = main(sys.argv[2:]); "
            "print(f'{sys.argv[1]} imported:', sys.argv[1] in sys.modules); raise SystemExit(code)")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code, module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


LONG_TRIALS = ["--weights", "none", "--alpha", "0.25", "--image-size", "32", "--batch-size", "8",
               "--no-augment", "--heartbeat-interval", "1"]
LONG_EPOCHS = ["--epochs", "600"]  # trials of several seconds even on an idle machine, to stop mid-way


def spawn(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "study", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_running_trial(storage: str, name: str, after_complete: int = 0,
                           timeout: float = 180) -> optuna.trial.FrozenTrial:
    """Poll until `after_complete` trials completed and another has reported an epoch; that trial.

    With worker processes, such a trial already names its worker (`worker_pid`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        except Exception:  # the worker may still be creating the tables or the study
            trials = []
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if done >= after_complete and running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no trial of {name} reached its first epoch within {timeout} s")
