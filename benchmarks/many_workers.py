"""Trials per hour with one worker and with two on one storage and one artifact store.

Run: python benchmarks/many_workers.py [--trials 8] [--storage postgresql://...] [--artifacts URL]
The same study (generated images, untrained alpha 0.25 MobileNet at 32 px, batch 8, `--epochs`
epochs, a small space without the seven) runs to `--trials` trials twice: once as one
`python -m study run`, once as two such commands started together on the same study name,
each a worker with its own folder, both writing to one storage (a journal file by default,
PostgreSQL with --storage) and one artifact store (a folder by default, s3://... with
--artifacts and the AWS environment). Prints the wall time and trials per hour of each and
their ratio. On a machine with fewer cores than workers x TensorFlow's threads, two workers
share the cores, so the ratio says what a second machine would add only on one with spare cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import REPO, machine, table

def worker_folder(root: Path, name: str) -> Path:
    """A worker's own folder with its copy of the photos (generated with one seed: the same photos)."""
    from tests.conftest import SMALL_SPACE, write_class_images

    folder = root / name
    write_class_images(folder / "images", {"a": 16, "b": 16}, size=32)
    (folder / "space.toml").write_text(f"n_trials = 1000\n{SMALL_SPACE}")
    return folder


def command(args, storage: str, artifacts: str, study: str) -> list[str]:
    return [sys.executable, "-m", "study", "run", "--data", "images", "--space", "space.toml", "--weights", "none",
            "--alpha", "0.25", "--image-size", "32", "--epochs", str(args.epochs), "--batch-size", "8",
            "--no-augment", "--n-trials", str(args.trials), "--storage", storage, "--artifacts", artifacts,
            "--study-name", study, "--heartbeat-interval", "5"]


def run_workers(args, root: Path, count: int, storage: str, artifacts: str) -> float:
    """Wall seconds for `count` workers to finish one study of `args.trials` trials."""
    study = f"bench-{count}-{uuid.uuid4().hex[:8]}"
    folders = [worker_folder(root, f"{study}-worker-{k}") for k in range(count)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    workers = [subprocess.Popen(command(args, storage, artifacts, study), cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for folder in folders]
    for worker in workers:
        _, stderr = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"a worker failed: {stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--storage", help="an RDB URL shared by the workers (default: a journal file)")
    p.add_argument("--artifacts", help="the shared artifact store (default: a folder)")
    p.add_argument("--smoke", action="store_true", help="2 trials of 1 epoch: checks the script runs")
    args = p.parse_args()
    if args.smoke:
        args.trials, args.epochs = 2, 1
    rows, rates = [], {}
    with tempfile.TemporaryDirectory(prefix="study-workers-") as folder:
        root = Path(folder)
        storage = args.storage or f"journal:///{root / 'studies.log'}"
        artifacts = args.artifacts or str(root / "store")
        for count in (1, 2):
            seconds = run_workers(args, root, count, storage, artifacts)
            rates[count] = args.trials / seconds * 3600
            rows.append([count, f"{seconds:.1f}", f"{rates[count]:.0f}"])
    print(machine())
    print(f"{args.trials} trials of {args.epochs} epochs (32 px, untrained alpha 0.25), storage "
          f"{'journal file' if not args.storage else 'given'}, store {'folder' if not args.artifacts else 'given'}")
    print(table(["workers", "wall seconds", "trials per hour"], rows))
    print(f"ratio two workers / one: {rates[2] / rates[1]:.2f}x trials per hour")


if __name__ == "__main__":
    main()
