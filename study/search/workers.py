"""`run --gpus 0,1,...`: one worker process per GPU on this machine, all on one shared storage.

Each worker is the same `python -m study run` command without `--gpus`, with
CUDA_VISIBLE_DEVICES set to its GPU; the storage coordinates them (trials, the seven, the
total). Each such run trains in its own trial worker process, which inherits that variable:
the worker sees one GPU and owns it (memory growth on); the run itself never imports TensorFlow. SQLite is refused here: it is not safe for parallel workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from study.errors import StudyError
from study.store.storage import resolve_storage


def parse_gpus(text: str) -> list[str]:
    """`0,1,3` -> ["0", "1", "3"]; a one-line error for anything else."""
    items = [item.strip() for item in text.split(",")]
    if not items or not all(item.isdigit() for item in items) or len(set(items)) != len(items):
        raise StudyError(f"--gpus {text!r}: expected distinct GPU indices separated by commas, e.g. 0,1")
    return items


def visible_gpus() -> list[str]:
    """Indices of this machine's NVIDIA GPUs, from nvidia-smi (empty when there is none)."""
    from study.trial.devices import nvidia_smi_gpus

    return [gpu.index for gpu in nvidia_smi_gpus()]


def check_worker_setup(gpus: list[str], storage_url: str | None, available: list[str]) -> None:
    """Refuse GPUs the machine lacks, and SQLite for more than one worker."""
    missing = [gpu for gpu in gpus if gpu not in available]
    if missing:
        found = ", ".join(available) or "none"
        raise StudyError(f"--gpus: this machine has no GPU {', '.join(missing)} (GPUs found: {found})")
    if len(gpus) > 1 and resolve_storage(storage_url).scheme == "sqlite":
        raise StudyError("--gpus with several GPUs needs a storage for parallel workers: "
                         "--storage postgresql://USER:PASSWORD@HOST/DB or --storage journal:///PATH/FILE.log")


def without_gpus_option(argv: list[str]) -> list[str]:
    """The command line minus `--gpus X` / `--gpus=X`."""
    result, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--gpus":
            skip = True
        elif not item.startswith("--gpus="):
            result.append(item)
    return result


def launch_workers(gpus: list[str], storage_url: str | None, argv: list[str]) -> int:
    """Start one `run` per GPU, forward Ctrl-C/SIGTERM to them, return the worst exit code."""
    check_worker_setup(gpus, storage_url, visible_gpus())
    command = [sys.executable, "-m", "study", *without_gpus_option(argv)]
    workers = []
    for gpu in gpus:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu)
        workers.append(subprocess.Popen(command, env=env))
        print(f"worker on GPU {gpu}: pid {workers[-1].pid}", flush=True)
    try:
        codes = [worker.wait() for worker in workers]
    except KeyboardInterrupt:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        codes = [worker.wait() for worker in workers]
    return max(codes, key=abs)
