"""Where trials train: in recycled worker processes (the default) or in the run's own process.

`ProcessRuntime` keeps one spawned worker (`study.trial.worker`) that imports TensorFlow
once and serves trials until it is recycled, after `trials_per_worker` trials or once its
resident memory passes `memory_limit_mb`; a fresh worker memory-maps the decoded images and
features and starts in seconds. TensorFlow keeps memory after every trial in one process
(~85 MiB a trial with `clear_session()`), so recycling keeps a long study's memory flat. A
worker that dies (out of memory, a crash in native code) fails only its trial, with the
reason; `--trial-timeout` kills a worker whose trial runs too long. The parent never imports
TensorFlow for training, so it holds no GPU memory.

`InProcessRuntime` (`--isolation none`) trains in the calling process, for debugging.
Both take and return the plain values of `study.trial.job`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
import types
from dataclasses import replace

from study import interrupts
from study.config import RunConfig
from study.errors import StudyError
from study.trial.fit import EpochLog
from study.trial.job import Prepared, RunSetup, TrialHooks, TrialJob, TrialResult, TrialTrainer, prepare_run

ISOLATIONS = ("process", "none")
TRIALS_PER_WORKER = RunConfig.trials_per_worker
STOP_GRACE_SECONDS = 60  # how long a worker may take to end a trial it was told to stop
EXIT_GRACE_SECONDS = 10  # how long a worker may take to exit when asked
POLL_SECONDS = 0.1  # how often the parent checks for a signal, a deadline or a dead worker
_START_LOCK = threading.Lock()


class TrialFailed(Exception):
    """A trial could not finish: its worker died or timed out, or training raised."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def default_memory_limit_mb() -> float:
    """Half of this machine's physical memory: a worker past it is replaced after its trial."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 * 1024) / 2
    except (ValueError, OSError):
        return 8192.0


def death_reason(exitcode: int | None) -> str:
    """`worker died: SIGKILL (out of memory?)` and the like, from a process exit code."""
    if exitcode is None:
        return "worker died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash in native code)",
                "SIGABRT": " (a crash in native code)", "SIGBUS": " (a crash in native code)"}.get(name, "")
        return f"worker died: {name}{hint}"
    return f"worker died: exit code {exitcode}"


def copy_log(source: EpochLog, target: EpochLog) -> None:
    target.history = source.history
    target.epoch_seconds = source.epoch_seconds


class InProcessRuntime:
    """Trials in this process (`--isolation none`): no start-up cost, no containment."""

    worker_pid = None

    def __init__(self):
        self.trainer = TrialTrainer()

    def prepare(self, setup: RunSetup) -> Prepared:
        return prepare_run(setup)

    def run(self, setup: RunSetup, job: TrialJob, hooks: TrialHooks, log: EpochLog) -> TrialResult:
        on_epoch = hooks.on_epoch

        def checked_epoch(epoch: int, epoch_log: EpochLog) -> None:
            interrupts.raise_if_requested()
            on_epoch(epoch, epoch_log)

        return self.trainer.run(setup, job, TrialHooks(hooks.on_built, checked_epoch), log,
                                on_batch=interrupts.raise_if_requested)

    def save(self, model_path: str, meta_path: str, meta: dict) -> bool:
        return self.trainer.save(model_path, meta_path, meta)

    def lease(self):
        """This runtime, for one trial (the interface of `study.trial.runtime_pool.RuntimePool`)."""
        return contextlib.nullcontext(self)

    def call(self, target: str, **kwargs):
        from study.trial.worker import call

        self.trainer.release()
        return call(target, kwargs)

    def close(self) -> None:
        self.trainer.release()


class ProcessRuntime:
    """Trials in a spawned worker process, recycled every `trials_per_worker` trials."""

    def __init__(self, trials_per_worker: int = TRIALS_PER_WORKER, memory_limit_mb: float | None = None,
                 on_start=None, threads: int | None = None):
        self.trials_per_worker = trials_per_worker
        self.threads = threads  # the worker's compute threads (None: the backend's default, all cores)
        self.memory_limit_mb = memory_limit_mb or default_memory_limit_mb()
        self.on_start = on_start  # called with the new worker's pid
        self.process = None
        self.connection = None
        self.worker_pid: int | None = None
        self.served = 0  # trials the current worker has finished (any outcome but death)
        self.last_rss_mb = 0.0

    # -- worker life -------------------------------------------------------------------------

    def launch(self) -> None:
        """Start a worker now, without waiting for it: it imports its libraries while the
        caller goes on (`run --jobs` starts all its workers at once)."""
        if self.process is None:
            self._spawn()

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        from study.trial.worker import serve

        process = context.Process(target=serve, args=(child_end, self.threads), name="study-trial-worker", daemon=True)
        # the worker must never see Ctrl-C, even while it starts; one start at a time (`run --jobs`),
        # or two threads would swap `__main__` over each other and leave a stand-in behind
        with _START_LOCK, signals_held(), main_module_hidden():
            process.start()
        child_end.close()
        self.process, self.connection, self.served, self.worker_pid = process, parent_end, 0, None

    def _await_ready(self) -> None:
        message = self._receive(None, None)
        if message[0] != "ready":
            raise TrialFailed(f"worker did not start: {message!r}")
        self.worker_pid = message[1]
        if self.on_start is not None:
            self.on_start(self.worker_pid)

    def _ensure_worker(self) -> None:
        recycle = self.process is not None and (self.served >= self.trials_per_worker
                                                or self.last_rss_mb > self.memory_limit_mb)
        if recycle:
            self._stop()
        if self.process is None:
            self._spawn()
        if self.worker_pid is None:
            self._await_ready()

    def _stop(self) -> None:
        """Ask the worker to exit; kill it if it does not. One still starting (`launch`, never
        used) is killed: it would only read the request once its imports are done."""
        if self.process is not None and self.worker_pid is None:
            self._kill()
            return
        process, connection = self.process, self.connection
        self.process = self.connection = None
        if process is None:
            return
        try:
            connection.send(("exit",))
        except (OSError, ValueError):
            pass
        process.join(EXIT_GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
        connection.close()

    def _kill(self) -> None:
        process, connection = self.process, self.connection
        self.process = self.connection = None
        if process is not None:
            process.kill()
            process.join()
            connection.close()

    def _receive(self, deadline: float | None, timeout: float | None, interruptible: bool = True):
        """The worker's next message; raises on a signal, a passed deadline or a dead worker.

        The signal and the deadline are checked before every wait, not only when the worker
        is quiet: a trial of fast epochs sends messages back to back and would starve them.
        """
        connection, process = self.connection, self.process
        while True:
            if interruptible and interrupts.requested():
                self._kill()
                raise KeyboardInterrupt
            if deadline is not None and time.monotonic() > deadline:
                self._kill()
                raise TrialFailed(f"timed out after {timeout:g} s")
            try:
                if connection.poll(POLL_SECONDS):
                    return connection.recv()
            except (EOFError, OSError):
                process.join(5)
                exitcode = process.exitcode
                self._kill()
                raise TrialFailed(death_reason(exitcode)) from None
            if not process.is_alive() and not connection.poll(0):
                exitcode = process.exitcode
                self._kill()
                raise TrialFailed(death_reason(exitcode))

    def _send(self, message) -> None:
        try:
            self.connection.send(message)
        except (OSError, ValueError):
            exitcode = self.process.exitcode if self.process is not None else None
            self._kill()
            raise TrialFailed(death_reason(exitcode)) from None

    # -- the runtime interface ------------------------------------------------------------------

    def _call(self, target: str, kwargs: dict):
        """Send a `call` to the worker and return its reply; a signal while waiting kills it."""
        self._ensure_worker()
        try:
            self._send(("call", target, kwargs))
            return self._receive(None, None)
        except BaseException as error:
            if not isinstance(error, TrialFailed):  # TrialFailed: the worker is already gone
                self._kill()
            raise

    def prepare(self, setup: RunSetup) -> Prepared:
        """Check weights and devices and compute cached features, in the worker that trains next."""
        try:
            message = self._call("study.trial.job:prepare_run", {"setup": setup})
        except TrialFailed as failure:
            raise StudyError(f"the trial worker could not start the run: {failure.reason}") from None
        if message[0] == "error":
            raise StudyError(message[2])
        return message[1]

    def run(self, setup: RunSetup, job: TrialJob, hooks: TrialHooks, log: EpochLog) -> TrialResult:
        """Train `job` in the worker; hook exceptions stop the trial there, then propagate."""
        self._ensure_worker()
        deadline = time.monotonic() + job.timeout if job.timeout else None
        busy = True  # the worker is in the trial: anything unexpected here means killing it
        try:
            self._send(("trial", setup, replace(job, timeout=None)))  # the parent enforces the limit
            while True:
                message = self._receive(deadline, job.timeout)
                kind = message[0]
                if kind == "built":
                    hooks.on_built(message[1], message[2])
                elif kind == "epoch":
                    copy_log(message[2], log)
                    try:
                        hooks.on_epoch(message[1], log)
                    except Exception:
                        busy = False
                        self._stop_trial(deadline, job.timeout)
                        raise
                    self._send(("decision", "continue"))
                elif kind == "done":
                    busy = False
                    result = message[1]
                    copy_log(EpochLog(result.history, result.epoch_seconds), log)
                    self.served += 1
                    self.last_rss_mb = result.rss_mb
                    return result
                elif kind == "failed":
                    busy = False
                    copy_log(message[2], log)
                    self.served += 1
                    raise TrialFailed(message[1])
                else:
                    raise TrialFailed(f"unexpected message from the worker: {kind!r}")
        except BaseException:
            if busy and self.process is not None:
                self._kill()
            raise

    def _stop_trial(self, deadline: float | None, timeout: float | None) -> None:
        """Tell the worker to stop the trial and wait until it has (or kill it)."""
        self._send(("decision", "stop"))
        limit = time.monotonic() + STOP_GRACE_SECONDS
        if deadline is not None:
            limit = min(limit, deadline)
        try:
            message = self._receive(limit, timeout)
        except TrialFailed:
            return  # killed: the next trial starts a fresh worker
        self.served += 1
        if message[0] != "stopped":
            self._kill()

    def save(self, model_path: str, meta_path: str, meta: dict) -> bool:
        """Have the worker save its last trained model as the study's best."""
        if self.process is None:
            raise TrialFailed("the worker that trained the model is gone")
        self._send(("save", model_path, meta_path, meta))
        # A finished trial's model is saved even if Ctrl-C came meanwhile: the run stops after it.
        message = self._receive(None, None, interruptible=False)
        if message[2] is not None:
            raise RuntimeError(message[2])
        return message[1]

    def lease(self):
        """This runtime, for one trial (the interface of `study.trial.runtime_pool.RuntimePool`)."""
        return contextlib.nullcontext(self)

    def call(self, target: str, **kwargs):
        """Run `module:function(**kwargs)` in a fresh worker and return its (plain) result.

        For jobs that own their training loop (a Keras Tuner search): the worker serves only
        this call and is replaced afterwards. A StudyError in it comes back as one; a dead
        worker raises TrialFailed with the reason.
        """
        message = self._call(target, kwargs)
        self.served = self.trials_per_worker  # recycle before anything else runs here
        if message[0] == "error":
            raise (StudyError if message[1] == "usage" else RuntimeError)(message[2])
        return message[1]

    def close(self) -> None:
        self._stop()


@contextlib.contextmanager
def main_module_hidden():
    """Start a spawned child without re-running the caller's `__main__` in it.

    `spawn` normally imports the parent's main module in the child (as `__mp_main__`): that
    re-runs a user's unguarded script, and fails outright for `python -` or a notebook. The
    worker needs nothing from it, so the main module is hidden while the child is prepared.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class signals_held:
    """Block SIGINT and SIGTERM while a child starts, so the child starts with them blocked
    (the mask survives fork and exec) until its own handlers ignore them; a signal that
    arrives meanwhile stays pending here and is delivered afterwards. In the main thread they
    are also ignored meanwhile; other threads (`run --jobs`) cannot set handlers, and the
    mask, which is per thread, is what the child inherits."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.main = threading.current_thread() is threading.main_thread()
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(self.SIGNALS))
        if self.main:
            self.handlers = {number: signal.signal(number, signal.SIG_IGN) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        if self.main:
            for number, handler in self.handlers.items():
                signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)


def make_runtime(isolation: str, trials_per_worker: int = TRIALS_PER_WORKER, memory_limit_mb: float | None = None,
                 on_start=None, jobs: int = 1):
    """The runtime `--isolation` names; with `jobs` > 1, a pool of that many worker runtimes that
    share the cores (each computes on its share: N workers each using every core would fight
    over them) and, by default, half the machine's memory."""
    check_jobs(isolation, jobs)
    if isolation == "none":
        return InProcessRuntime()
    if jobs == 1:
        return ProcessRuntime(trials_per_worker, memory_limit_mb, on_start)
    from study.trial.runtime_pool import RuntimePool

    limit = memory_limit_mb or default_memory_limit_mb() / jobs
    threads = max(1, available_cores() // jobs)
    return RuntimePool(ProcessRuntime(trials_per_worker, limit, on_start, threads) for _ in range(jobs))


def check_jobs(isolation: str, jobs: int) -> None:
    """Several trials at once need a worker process each (StudyError otherwise)."""
    if jobs > 1 and isolation == "none":
        raise StudyError(f"--jobs {jobs} needs --isolation process: trials in one process would share "
                         "Keras' global state")


def available_cores() -> int:
    """The cores this process may run on (its affinity, which containers and `taskset` narrow)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
