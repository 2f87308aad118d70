"""Shared set-up of the benchmarks: data, weights, timing and the printed table.

Every benchmark measures the things it compares side by side in one process and prints a
small markdown table and their ratio; `--smoke` runs it on a few generated images so the
test suite keeps the scripts working (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from study.backends import skip_unused_optional_imports  # noqa: E402 (needs the path above)

# The scripts start as `study`'s commands and workers do: Keras without the optional imports it
# never uses here (keras_import.py), and no collection of its objects at the exit (command_exit.py).
skip_unused_optional_imports()
atexit.register(gc.freeze)
# The paths "before" a change call Keras the old way on purpose (trial_overhead.py retraces
# `predict`): TensorFlow's Python warnings about it are not the benchmark's output.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

DEFAULT_DATA = REPO.parent / "shared" / "data" / "food10"
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_2_5_224_tf_no_top.h5"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--alpha", type=float, default=0.25)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--smoke", action="store_true", help="a few generated images, weights none: checks the script runs")
    return p


def prepare(args):
    """Decoded splits and resolved weights; in smoke mode, generated images and no weights."""
    from study.config import SplitConfig
    from study.data.images import load_splits
    from study.trial.model import check_weights

    if args.smoke:
        from tests.conftest import write_class_images

        folder = Path(tempfile.mkdtemp(prefix="study-bench-"))
        args.data = write_class_images(folder / "images", {"a": 10, "b": 10, "c": 10}, size=40)
        args.weights, args.image_size, args.epochs = "none", 32, 1
    data = load_splits(args.data, args.image_size, SplitConfig(), seed=0, warn=lambda line: None)
    return data, check_weights(args.weights, args.alpha, args.image_size)


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def steady_epoch_seconds(epoch_seconds: list[float]) -> float:
    """A steady epoch: the median of those after the first (which pays the traces). A one-epoch
    trial has none, and its only epoch stands for one, so its fixed cost is what it paid outside
    that epoch: every script reads one-epoch trials (their --smoke runs) the same way."""
    return statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else epoch_seconds[0]


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
