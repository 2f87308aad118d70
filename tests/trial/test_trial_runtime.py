"""Trials in worker processes: a killed worker, a timeout, recycling, a killed run, bad options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from study.trial.runtime import death_reason
from tests.commands import LONG_TRIALS, spawn, study_cli, study_main_reporting_import, wait_for_running_trial
from tests.conftest import REPO, SMALL_SPACE, write_class_images

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def small_study(tmp_path, n_trials: int = 3) -> list[str]:
    """Images and a space file in tmp_path; the run's arguments (epochs not included)."""
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "small.toml").write_text(f"n_trials = {n_trials}\n" + SMALL_SPACE)
    return ["run", "--data", "images", "--space", "small.toml", *LONG_TRIALS]


def wait_gone(pid: int, timeout: float = 60) -> bool:
    """True once no process `pid` exists (a zombie counts as gone)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_a_dead_worker_is_named_by_its_signal_or_exit_code():
    assert death_reason(-signal.SIGKILL) == "worker died: SIGKILL (out of memory?)"
    assert death_reason(-signal.SIGSEGV) == "worker died: SIGSEGV (a crash in native code)"
    assert death_reason(3) == "worker died: exit code 3"


@pytest.mark.parametrize("option, value, message", [
    ("--trials-per-worker", "0", "argument --trials-per-worker: expected a positive integer, got '0'"),
    ("--trial-timeout", "-1", "argument --trial-timeout: expected a positive number of seconds, got '-1'"),
    ("--worker-memory-limit", "lots", "argument --worker-memory-limit: expected a positive number of seconds"),
    ("--isolation", "thread", "argument --isolation: invalid choice: 'thread'"),
])
def test_bad_runtime_options_are_one_line_and_exit_code_2(tmp_path, option, value, message):
    result = study_cli("run", "--data", "images", option, value, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("study: error: ") and message in result.stderr


def test_a_worker_starts_for_a_script_read_from_standard_input():
    # `spawn` would re-run the caller's main module in the child; from stdin that cannot work.
    script = ("from study.trial.runtime import ProcessRuntime\n"
              "runtime = ProcessRuntime()\nruntime._ensure_worker()\nprint('worker', runtime.worker_pid)\n"
              "runtime.close()\nprint('alive', runtime.process is not None)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-"], input=script, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    pid = int(result.stdout.split()[1])
    assert pid != os.getpid() and wait_gone(pid) and "alive False" in result.stdout


@pytest.mark.slow
def test_a_worker_killed_mid_trial_fails_only_that_trial_and_the_run_finishes(tmp_path):
    command = [*small_study(tmp_path), "--n-trials", "3", "--epochs", "40"]
    run = spawn(*command, cwd=tmp_path)
    storage = f"sqlite:///{tmp_path}/study.db"
    killed_pid = wait_for_running_trial(storage, "images").user_attrs["worker_pid"]
    os.kill(killed_pid, signal.SIGKILL)  # whichever trial it is training now fails
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name="images", storage=storage).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker_pid"] == killed_pid
    assert failed[0].user_attrs["fail_reason"] == "worker died: SIGKILL (out of memory?)"
    assert sum(t.state in FINISHED for t in trials) == 3  # the failed trial was made up for
    later = [t for t in trials if t.number > failed[0].number]
    assert later and all(t.user_attrs["worker_pid"] != killed_pid for t in later)
    assert "worker died: SIGKILL (out of memory?)" in out


@pytest.mark.slow
def test_a_trial_past_its_timeout_fails_with_the_reason(tmp_path):
    command = [*small_study(tmp_path), "--n-trials", "1", "--epochs", "100000", "--trial-timeout", "4"]
    result = study_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trial = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db").trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "timed out after 4 s"
    assert trial.user_attrs["epochs_run"] == len(trial.user_attrs["history"]["val_accuracy"])
    assert "stopping: none of the last 1 trial(s) finished" in result.stderr


@pytest.mark.slow
def test_workers_are_recycled_after_n_trials_and_trials_keep_their_results(tmp_path):
    command = [*small_study(tmp_path), "--n-trials", "5", "--epochs", "1", "--trials-per-worker", "2"]
    result = study_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    pids = [t.user_attrs["worker_pid"] for t in trials]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] and len(set(pids)) == 3
    assert os.getpid() not in pids
    for trial in trials:  # each result came back from its worker whole
        assert set(trial.params) == {"head_depth", "dense_units", "learning_rate"}
        assert trial.value == max(trial.user_attrs["history"]["val_accuracy"])
        assert 0 < trial.user_attrs["trainable_params"] and 0 <= trial.user_attrs["test_accuracy"] <= 1


@pytest.mark.slow
def test_a_worker_past_the_memory_limit_is_replaced_after_its_trial(tmp_path):
    command = [*small_study(tmp_path), "--n-trials", "2", "--epochs", "1", "--worker-memory-limit", "1"]
    result = study_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[0].user_attrs["worker_pid"] != trials[1].user_attrs["worker_pid"]
    assert trials[0].user_attrs["peak_rss_mb"] > 1  # why the first worker went


@pytest.mark.slow
def test_the_run_itself_never_imports_tensorflow(tmp_path):
    small_study(tmp_path)
    args = ["run", "--data", "images", "--space", "small.toml", *LONG_TRIALS, "--n-trials", "1", "--epochs", "1"]
    result = study_main_reporting_import("tensorflow", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorflow imported: False" in result.stdout
    none = study_main_reporting_import("tensorflow", *args, "--n-trials", "2", "--isolation", "none", cwd=tmp_path)
    assert none.returncode == 0, none.stderr[-2000:]
    assert "tensorflow imported: True" in none.stdout  # the check can tell


def kill_run_then_rerun(tmp_path, command: list[str], storage: str, name: str):
    """Start `command`, SIGKILL the run mid-trial, check its worker goes too, run it again to the end.

    Returns the trials at the end and the numbers of those the killed run left RUNNING.
    """
    run = spawn(*command, cwd=tmp_path)
    wait_for_running_trial(storage, name)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    ghosts = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.RUNNING,))
    assert len(ghosts) == 1
    assert wait_gone(ghosts[0].user_attrs["worker_pid"]), "the worker outlived its run"
    again = study_cli(*command, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials[ghosts[0].number].state == TrialState.FAIL
    return trials, trials[ghosts[0].number]


@pytest.mark.slow
def test_kill_9_of_the_whole_run_on_sqlite_then_the_same_command_reaches_the_total(tmp_path):
    command = [*small_study(tmp_path), "--n-trials", "2", "--epochs", "40"]
    storage = f"sqlite:///{tmp_path}/study.db"
    trials, ghost = kill_run_then_rerun(tmp_path, command, storage, "images")
    assert sum(t.state in FINISHED for t in trials) == 2
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert ghost.user_attrs["fail_reason"] == "abandoned: its run ended without finishing it"


@pytest.mark.slow
def test_kill_9_of_the_whole_run_on_postgres_then_the_same_command_reaches_the_total(tmp_path, postgres_url):
    import uuid

    name = f"ghost-{uuid.uuid4().hex[:8]}"
    # Started again at once, the killed trial's heartbeat (5 s, grace 10 s) is not stale yet: the
    # run must wait for it to go stale, then run its retry, rather than stop one trial short.
    command = [*small_study(tmp_path), "--n-trials", "2", "--epochs", "40", "--study-name", name,
               "--storage", postgres_url, "--heartbeat-interval", "5"]
    trials, ghost = kill_run_then_rerun(tmp_path, command, postgres_url, name)
    assert sum(t.state in FINISHED for t in trials) == 2
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == ghost.number]
    assert len(retries) == 1 and retries[0].state in FINISHED and retries[0].params == ghost.params
