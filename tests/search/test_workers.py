"""Many workers: PostgreSQL sharing, a killed worker's trial retried, Ctrl-C and resume, --gpus checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest
from optuna.trial import TrialState

from study.errors import StudyError
from study.search.workers import check_worker_setup, parse_gpus, without_gpus_option
from study.store.record import TrialKey
from tests.commands import LONG_EPOCHS, LONG_TRIALS, TINY_RUN, spawn, study_cli, wait_for_running_trial
from tests.conftest import REPO, SMALL_SPACE, write_class_images


def test_gpu_lists_are_checked_against_the_machine():
    assert parse_gpus("0,1") == ["0", "1"]
    with pytest.raises(StudyError, match="expected distinct GPU indices"):
        parse_gpus("0,a")
    with pytest.raises(StudyError, match="this machine has no GPU 1 \\(GPUs found: 0\\)"):
        check_worker_setup(["0", "1"], "postgresql://u:p@h/db", available=["0"])
    with pytest.raises(StudyError, match="needs a storage for parallel workers"):
        check_worker_setup(["0", "1"], None, available=["0", "1"])
    check_worker_setup(["0", "1"], "journal:////tmp/x.log", available=["0", "1"])
    assert without_gpus_option(["run", "--gpus", "0,1", "--data", "d", "--gpus=2"]) == ["run", "--data", "d"]


def test_gpus_on_a_machine_without_them_is_one_line(tmp_path):
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        pytest.skip("this machine has nvidia-smi")
    result = study_cli("run", "--data", "images", "--gpus", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "study: error: --gpus: this machine has no GPU 0 (GPUs found: none)"


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_trial_as_interrupted_and_the_same_command_resumes(tmp_path, signal_number):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "small.toml").write_text("n_trials = 3\n" + SMALL_SPACE)
    # Long enough to be stopped mid-way (a trial runs at least 101 epochs), while the resumed trial
    # stops 100 epochs after its best instead of running all 600.
    command = ["run", "--data", "images", "--space", "small.toml", "--n-trials", "1", *LONG_TRIALS, *LONG_EPOCHS,
               "--patience", "100"]
    worker = spawn(*command, cwd=tmp_path)
    storage = f"sqlite:///{tmp_path}/study.db"
    number = wait_for_running_trial(storage, "images").number
    worker.send_signal(signal_number)
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 130
    assert stderr.strip().splitlines()[-1] == "study: interrupted; run the same command again to resume"
    interrupted = optuna.load_study(study_name="images", storage=storage).trials[number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["fail_reason"] == "interrupted"
    assert not Path(f"/proc/{interrupted.user_attrs['worker_pid']}").exists()  # its worker was stopped too

    again = study_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    states = [t.state for t in optuna.load_study(study_name="images", storage=storage).trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


@pytest.mark.slow
def test_three_postgres_workers_share_the_total_and_run_the_seven_once(tmp_path, postgres_url):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    name = f"three-{uuid.uuid4().hex[:8]}"
    args = ["run", "--data", "images", "--space", "default", "--study-name", name, "--storage", postgres_url,
            "--n-trials", "9", *TINY_RUN[2:]]
    workers = [spawn(*args, cwd=tmp_path) for _ in range(3)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    password = urlsplit(postgres_url).password
    assert password and password not in "".join(out + err for out, err in outputs)  # never echoed
    report = study_cli("report", "--study-name", name, "--storage", postgres_url, "--out", "reports", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-1500:]
    evaluated = study_cli("evaluate", "--data", "images", "--study-name", name, "--storage", postgres_url, "--json",
                          cwd=tmp_path)
    assert evaluated.returncode == 0 and '"n_images": 16' in evaluated.stdout

    trials = optuna.load_study(study_name=name, storage=postgres_url).trials
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 9 <= len(finished) <= 11  # workers finishing at the same instant may each start one more
    seeds = [t.user_attrs[TrialKey.SEED_NAME] for t in trials if TrialKey.SEED_NAME in t.user_attrs]
    assert sorted(seeds) == [f"mn_resultset{i}" for i in range(1, 8)]
    reported = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("trial ")]
    assert len(reported) == len(set(reported)) == len(finished)  # each trial run by exactly one worker
    assert sum(1 for out, _ in outputs if "trial " in out) >= 2  # the work was shared


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_rerun_by_another(tmp_path, postgres_url):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "small.toml").write_text("n_trials = 3\n" + SMALL_SPACE)
    name = f"killed-{uuid.uuid4().hex[:8]}"
    args = ["run", "--data", "images", "--space", "small.toml", "--study-name", name,
            "--storage", postgres_url, "--n-trials", "3", *LONG_TRIALS]
    finished = study_cli("run", "--data", "images", "--space", "small.toml", "--study-name", name,
                         "--storage", postgres_url, "--n-trials", "1", *LONG_TRIALS, "--epochs", "1", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-1500:]
    first = spawn(*args, "--epochs", "3000", cwd=tmp_path)
    stale_number = wait_for_running_trial(postgres_url, name, after_complete=1).number
    before = {t.number: t.value for t in optuna.load_study(study_name=name, storage=postgres_url).trials
              if t.state == TrialState.COMPLETE}
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    time.sleep(3)  # longer than the 2 s grace period of a 1 s heartbeat

    second = spawn(*args, "--epochs", "2", cwd=tmp_path)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=postgres_url).trials
    assert {t.number: t.value for t in trials if t.number in before} == before  # finished work kept
    stale = trials[stale_number]
    assert stale.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == stale_number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == stale.params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_wrong_postgres_credentials_are_one_line_without_the_password(tmp_path, postgres_url):
    parts = urlsplit(postgres_url)
    wrong = postgres_url.replace(f":{parts.password}@", ":not-the-s3cret@")
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    result = study_cli("run", "--data", "images", "--storage", wrong, "--weights", "none", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("study: error: cannot open storage 'postgresql://") and "password authentication failed" in line
    assert "not-the-s3cret" not in result.stderr + result.stdout


def test_an_unreachable_server_is_one_line(tmp_path):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    result = study_cli("run", "--data", "images", "--weights", "none",
                       "--storage", "postgresql://u:hunter2@127.0.0.1:1/db", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("study: error: cannot open storage 'postgresql://u:***@127.0.0.1:1/db'")
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.slow
def test_journal_storage_runs_and_reports(tmp_path):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    storage = f"journal:///{tmp_path}/studies.log"
    run = study_cli("run", "--data", "images", "--storage", storage, "--n-trials", "1", *TINY_RUN, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-1500:]
    assert (tmp_path / "images.best.keras").is_file()
    report = study_cli("report", "--study-name", "images", "--storage", storage, "--out", "reports", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-1500:]
    assert "1 complete, 0 pruned, 0 failed" in (tmp_path / "reports" / "images" / "README.md").read_text()


def test_workers_starting_together_on_a_new_database_all_get_in(postgres_url):
    import sqlalchemy

    fresh = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {fresh}"))
    url = postgres_url.rsplit("/", 1)[0] + "/" + fresh
    code = f"from study.store.storage import open_storage, resolve_storage; open_storage(resolve_storage({url!r}))"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        openers = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        errors = [opener.communicate(timeout=120)[1] for opener in openers]
        assert [o.returncode for o in openers] == [0, 0, 0, 0], errors
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {fresh}"))


def test_parallel_workers_seed_their_samplers_apart_but_share_a_qmc_sequence():
    from study.search.runner import make_sampler, sampler_seed

    assert sampler_seed("tpe", 0, "sqlite", pid=11) == 0  # one worker: reproducible
    assert sampler_seed("tpe", 0, "postgresql", pid=11) != sampler_seed("tpe", 0, "postgresql", pid=12)
    assert sampler_seed("qmc", 3, "postgresql", pid=11) == 3
    first, second = (make_sampler("random", sampler_seed("random", 0, "journal", pid=pid)) for pid in (11, 12))
    import optuna

    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    values = [s.sample_independent(optuna.create_study(), optuna.trial.create_trial(value=0.0, params={"x": 0.5},
                                                                                      distributions=distributions),
                                   "x", distributions["x"]) for s in (first, second)]
    assert values[0] != values[1]
