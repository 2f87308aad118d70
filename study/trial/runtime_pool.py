"""`run --jobs N`: N trial runtimes, and each trial leases one for its training and its saving.

Optuna runs N trials at once in threads (`study.optimize(n_jobs=N)`); each trial takes a free
runtime (its own worker process) for the whole trial, so its model is saved by the worker that
trained it. Worth it where one trial leaves the machine idle: the first epoch's trace and the
model build run on one core, and a small model's steps do not fill a GPU.
"""

from __future__ import annotations

import contextlib
import queue


class RuntimePool:
    """Several runtimes behind the runtime interface the run uses (`prepare`, `lease`, `call`, `close`)."""

    def __init__(self, runtimes):
        self.runtimes = list(runtimes)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for runtime in self.runtimes:
            self._free.put(runtime)

    def prepare(self, setup):
        """Prepared once, by the first runtime: weights and cached features are the run's, not a
        worker's. The other workers start meanwhile, so they import their libraries while nothing
        trains."""
        for runtime in self.runtimes[1:]:
            runtime.launch()
        return self.runtimes[0].prepare(setup)

    @contextlib.contextmanager
    def lease(self):
        """A runtime no other trial holds, for as long as the block runs (waits for one)."""
        runtime = self._free.get()
        try:
            yield runtime
        finally:
            self._free.put(runtime)

    def call(self, target: str, **kwargs):
        with self.lease() as runtime:
            return runtime.call(target, **kwargs)

    def close(self) -> None:
        for runtime in self.runtimes:
            runtime.close()
