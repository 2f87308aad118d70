"""The trial worker process: imports TensorFlow once and trains the trials its parent sends.

Started by `study.trial.runtime.ProcessRuntime` with the `spawn` method (TensorFlow is not
fork-safe). It talks over one pipe: the parent sends `trial`, `save`, `call` and `exit`;
the worker answers (`call` runs a function by name, such as the run's preparation or a whole
Keras Tuner search, and returns its plain result), and during a trial sends the model's
size, then each epoch's metrics, and waits for `continue` or `stop` (the parent's pruner
decides). It ignores Ctrl-C and SIGTERM,
which are the parent's to handle, and exits on its own when the parent is gone.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import threading
import time

PARENT_CHECK_SECONDS = 0.5


class StopRequested(Exception):
    """The parent said `stop` after an epoch (the trial is pruned or the run is ending)."""


def short_reason(error: BaseException) -> str:
    """`Type: first line of the message`, at most 500 characters."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def exit_with_parent() -> None:
    """End this process when its parent dies (a `kill -9` of the run must not leave it training)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def serve(connection, threads: int | None = None) -> None:
    """The worker's main loop (the spawned process's target); `threads`: how many cores its
    training computes on (`run --jobs` shares them out; None: the backend's default)."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    exit_with_parent()

    from study.backends import skip_unused_optional_imports
    from study.errors import StudyError
    from study.quiet import quiet_python_warnings
    from study.trial.job import TrialTrainer

    quiet_python_warnings()  # the run's filters are not inherited by a spawned process
    # JAX would take 75% of a GPU's memory at its first use; like TensorFlow's memory growth,
    # taking it as trials need it lets a worker's memory say what its trials use.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if threads:  # read by TensorFlow when it starts; a value the user set wins
        # Both pools: with the inter-op pool at its default (every core), two workers' graphs
        # ran 2 x cores threads, and a trial's fixed cost (its trace, its first steps) grew by
        # ~1 s in the demo's `--jobs 2`.
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    skip_unused_optional_imports()
    import keras  # the backend chosen by the run (KERAS_BACKEND), imported before the first trial is timed

    backend = importlib.import_module(keras.backend.backend())
    if threads and keras.backend.backend() == "torch":
        backend.set_num_threads(threads)
        backend.set_num_interop_threads(threads)  # before any parallel work, which is now
    # The libraries' own objects live as long as the worker: out of the collector's reach, each
    # trial's collection (in `clear_session`) walks only what trials made (~0.3 s -> ~0.1 s).
    gc.freeze()

    connection.send(("ready", os.getpid()))
    trainer = TrialTrainer()
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "exit":
            # Nothing is left to write (results went back, models were saved and closed);
            # skipping the interpreter's teardown of TensorFlow saves ~1.5 s of every run's end.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if kind == "trial":
            run_trial(connection, trainer, message[1], message[2])
        elif kind == "save":
            try:
                connection.send(("saved", trainer.save(*message[1:]), None))
            except Exception as error:
                connection.send(("saved", False, short_reason(error)))
        elif kind == "call":
            trainer.release()
            try:
                connection.send(("returned", call(message[1], message[2])))
            except StudyError as error:
                connection.send(("error", "usage", str(error)))
            except Exception as error:
                connection.send(("error", "internal", short_reason(error)))


def call(target: str, kwargs: dict):
    """Call `module:function` with `kwargs`: the run's preparation, or a whole job that trains
    (a Keras Tuner search)."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(**kwargs)


def run_trial(connection, trainer, setup, job) -> None:
    """Train one trial, streaming its progress; always ends with done, stopped or failed."""
    from study.trial.fit import EpochLog
    from study.trial.job import TrialHooks

    log = EpochLog()

    def on_built(trainable: int, total: int) -> None:
        connection.send(("built", trainable, total))

    def on_epoch(epoch: int, epoch_log: EpochLog) -> None:
        connection.send(("epoch", epoch, epoch_log))
        if connection.recv() != ("decision", "continue"):
            raise StopRequested

    try:
        result = trainer.run(setup, job, TrialHooks(on_built, on_epoch), log)
    except StopRequested:
        trainer.release()
        connection.send(("stopped", log))
        return
    except Exception as error:
        trainer.release()
        connection.send(("failed", short_reason(error), log))
        return
    connection.send(("done", result))
