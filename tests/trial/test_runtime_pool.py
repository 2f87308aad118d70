"""`run --jobs N`: the runtime pool, worker starts from other threads, and N trials at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import optuna
import pytest
from optuna.trial import TrialState

from study.trial.runtime import available_cores, make_runtime, signals_held
from study.trial.runtime_pool import RuntimePool
from tests.commands import TINY_RUN, study_cli
from tests.conftest import SMALL_SPACE, write_class_images


class FakeRuntime:
    def __init__(self, name: str):
        self.name, self.prepared, self.closed = name, [], False

    def prepare(self, setup):
        self.prepared.append(setup)
        return f"prepared by {self.name}"

    def launch(self):
        self.launched = True

    def call(self, target, **kwargs):
        return self.name, target, kwargs

    def close(self):
        self.closed = True


def test_a_pool_leases_each_runtime_to_one_holder_at_a_time_and_waits_for_a_free_one():
    pool = RuntimePool([FakeRuntime("a"), FakeRuntime("b")])
    with pool.lease() as first, pool.lease() as second:
        assert {first.name, second.name} == {"a", "b"}
        waited = []
        thread = threading.Thread(target=lambda: waited.append(pool.call("m:f", x=1)))
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and not waited  # both leased: the third holder waits
    thread.join(5)
    assert waited and waited[0][1:] == ("m:f", {"x": 1})


def test_a_pool_is_prepared_once_by_its_first_runtime_and_closes_them_all():
    runtimes = [FakeRuntime("a"), FakeRuntime("b"), FakeRuntime("c")]
    pool = RuntimePool(runtimes)
    assert pool.prepare("setup") == "prepared by a"
    assert [r.prepared for r in runtimes] == [["setup"], [], []]
    assert [getattr(r, "launched", False) for r in runtimes] == [False, True, True]  # started meanwhile
    pool.close()
    assert all(r.closed for r in runtimes)


def test_jobs_make_a_pool_of_worker_runtimes_sharing_the_memory_limit():
    pool = make_runtime("process", trials_per_worker=3, jobs=2)
    assert isinstance(pool, RuntimePool) and len(pool.runtimes) == 2
    single = make_runtime("process", trials_per_worker=3)
    assert [r.memory_limit_mb for r in pool.runtimes] == [single.memory_limit_mb / 2] * 2
    assert make_runtime("process", memory_limit_mb=900, jobs=2).runtimes[1].memory_limit_mb == 900
    assert all(r.process is None for r in pool.runtimes)  # workers start on first use
    assert [r.threads for r in pool.runtimes] == [max(1, available_cores() // 2)] * 2 and single.threads is None


@pytest.mark.slow
def test_each_worker_of_a_pool_computes_on_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "7")  # a value the user set wins
    pool = make_runtime("process", jobs=2)
    try:
        with pool.lease() as runtime:
            assert runtime.call("os:getenv", key="TF_NUM_INTRAOP_THREADS") == str(max(1, available_cores() // 2))
            assert runtime.call("os:getenv", key="TF_NUM_INTEROP_THREADS") == "7"
    finally:
        pool.close()
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS")
    pool = make_runtime("process", jobs=2)
    try:
        with pool.lease() as runtime:
            assert runtime.call("os:getenv", key="TF_NUM_INTEROP_THREADS") == str(max(1, available_cores() // 2))
    finally:
        pool.close()


def test_a_child_started_from_another_thread_starts_with_ctrl_c_blocked():
    # Only the main thread may set signal handlers; the mask, per thread, is what a child inherits.
    script = "import signal; print(sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])))"
    seen = []

    def start() -> None:
        with signals_held():
            seen.append(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60))
        seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(60)
    blocked = json.loads(seen[0].stdout)
    assert signal.SIGINT in blocked and signal.SIGTERM in blocked
    assert signal.SIGINT not in seen[1]  # the thread's own mask is restored


@pytest.mark.parametrize("extra, message", [
    (["--isolation", "none"], "--jobs 2 needs --isolation process"),
    (["--engine", "keras-tuner"], "--jobs 2: Keras Tuner runs one trial at a time"),
])
def test_jobs_that_cannot_run_together_are_one_line_and_exit_code_2(tmp_path, extra, message):
    write_class_images(tmp_path / "images", {"a": 4, "b": 4})
    result = study_cli("run", "--data", "images", "--jobs", "2", *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


@pytest.mark.slow
def test_two_jobs_train_trials_in_two_workers_at_once_and_keep_the_best_model(tmp_path):
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "small.toml").write_text("n_trials = 5\n" + SMALL_SPACE)
    command = ["run", "--data", "images", *TINY_RUN, "--space", "small.toml", "--epochs", "2", "--jobs", "2",
               "--trials-per-worker", "2"]
    result = study_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "running 5 trial(s) of 5 (0 finished before), 2 epochs each, mode finetune, 2 at a time" in result.stdout
    trials = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db").trials
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)  # no overshoot
    pids = [t.user_attrs["worker_pid"] for t in trials]
    assert pids[0] != pids[1]  # the first two trials each leased a worker of their own
    assert max(pids.count(pid) for pid in pids) <= 2  # each worker is still recycled after 2 trials
    assert len(set(pids)) >= 3
    best = max(t.value for t in trials)
    meta = json.loads((tmp_path / "images.best.json").read_text())
    assert meta["validation_accuracy"] == best
    assert trials[meta["trial_number"]].value == best
    for trial in trials:
        assert trial.value == max(trial.user_attrs["history"]["val_accuracy"])


def test_tpe_with_several_jobs_counts_running_trials_as_the_worst_so_far():
    from study.search.runner import make_sampler

    assert make_sampler("tpe", 0, jobs=2)._constant_liar  # Optuna's own switch; no public reader
    assert not make_sampler("tpe", 0)._constant_liar  # one at a time: as before, reproducible


def test_closing_a_pool_whose_workers_are_still_starting_kills_them():
    # A polite exit would be read only once each worker's TensorFlow import is done.
    from study.trial.runtime import ProcessRuntime

    runtimes = [ProcessRuntime(), ProcessRuntime()]
    pool = RuntimePool(runtimes)
    for runtime in runtimes:
        runtime.launch()  # as `prepare` does for all but the first
    processes = [runtime.process for runtime in runtimes]
    pool.close()
    assert [process.exitcode for process in processes] == [-signal.SIGKILL] * 2
