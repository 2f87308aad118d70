"""Quiet output: TensorFlow's native log lines and known library warnings hidden unless `--verbose`.

TensorFlow's C++ side writes its start-up lines (`oneDNN custom operations are on`, `failed
call to cuInit`, ...) to file descriptor 2 before absl's logging is set up, so
`TF_CPP_MIN_LOG_LEVEL` cannot hide them. `filter_native_stderr` therefore replaces fd 2 with a
pipe read by a thread that drops those lines and passes everything else on. Child processes
(trial workers) inherit the filtered descriptor, so one filter in the command's process
covers them too. Fatal native lines (`F...`) always pass: they explain a crash.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import sys
import threading
import warnings

VERBOSE_ENV = "STUDY_VERBOSE"

# absl's format (`I0000 00:00:1795939654.201450   19662 port.cc:153] ...`), TensorFlow's older
# one (`2024-01-01 12:00:00.000000: I tensorflow/...`), and absl's notice about the early lines.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\]"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] [\w./+-]+:\d+\]"
    # TensorFlow Lite's own logger, when the interpreter picks its CPU delegate
    rb"|INFO: Created TensorFlow Lite \w+ delegate for CPU\."
    # the TFLite converter's quantiser, on every int8 conversion
    rb"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$"
    # the second line of cpu_feature_guard's message
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags)"
)


def is_verbose() -> bool:
    """Whether the user asked for everything (`--verbose`, inherited by worker processes)."""
    return os.environ.get(VERBOSE_ENV) == "1"


def set_verbose(verbose: bool) -> None:
    """Record the choice where this process and its children can read it."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def is_native_log_line(line: bytes) -> bool:
    """True for an informational, warning or error line of TensorFlow's native logging."""
    return NATIVE_LOG_LINE.match(line) is not None


class NativeStderrFilter:
    """fd 2 replaced by a pipe; a thread copies its lines to the real stderr, less native log lines."""

    POLL_SECONDS = 0.05  # how soon the thread notices `close` once the pipe is drained

    def __init__(self):
        sys.stderr.flush()
        self._real = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._read_end = read_end
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="stderr-filter", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _copy(self) -> None:
        # The pipe's end of file cannot be waited for: the children (trial workers,
        # multiprocessing's resource tracker, which lives until this process ends) hold its
        # write end too. So the thread copies what is there and stops once `close` was called
        # and the pipe is empty.
        pending = b""
        while True:
            ready, _, _ = select.select([self._read_end], [], [], self.POLL_SECONDS)
            if not ready:
                if self._closing.is_set():
                    break
                continue
            chunk = os.read(self._read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
            if kept:
                os.write(self._real, kept)
        if pending and not is_native_log_line(pending):
            os.write(self._real, pending)

    def close(self) -> None:
        """Put the real stderr back and let the thread write what is in the pipe (children may
        still hold it: their lines after this are not waited for)."""
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._real, 2)
        self._closing.set()
        self._thread.join(timeout=1.0)


_filter: NativeStderrFilter | None = None


def filter_native_stderr() -> None:
    """Install the fd-2 filter once in this process (a no-op when verbose)."""
    global _filter
    if _filter is None and not is_verbose():
        _filter = NativeStderrFilter()


def quiet_python_warnings() -> None:
    """Library warnings about calls this project makes on purpose, and TensorFlow's Python logger."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if is_verbose():
        return
    # Optuna marks set_metric_names, the artifact API and RDB heartbeats experimental; they are
    # what we mean to use.
    warnings.filterwarnings("ignore", message=r".* is experimental \(supported from")
    warnings.filterwarnings("ignore", message=r"Argument ``\w+`` is an experimental feature")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
