"""Ctrl-C and SIGTERM, acted on where the code can stop cleanly rather than wherever they land.

Python raises KeyboardInterrupt at whatever bytecode the main thread runs when a signal
arrives. Inside a trial that is usually library code: a database transaction, or an object's
`__del__` (TensorFlow runs many while it trains), where the exception is printed as
"Exception ignored" and lost, so the run goes on as if nothing was asked. Inside `deferred()`
the handler only records the request; the trial loop, the worker wait and a Keras batch
callback call `raise_if_requested()` at points where stopping is safe.
"""

from __future__ import annotations

import contextlib
import signal

_requested: int | None = None
_deferring = 0


def _handler(signum, frame) -> None:
    global _requested
    _requested = signum
    if not _deferring:
        raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM (a scheduler, `kill`) through the handler above."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _handler)


@contextlib.contextmanager
def deferred():
    """Inside: a signal is recorded, and raised by the next `raise_if_requested()`."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def requested() -> bool:
    return _requested is not None


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt if a stop was asked for since the handler was installed."""
    if _requested is not None:
        raise KeyboardInterrupt
