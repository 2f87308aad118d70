"""Resident memory and wall time of a whole `study run`, trials in worker processes against in-process.

Run: python benchmarks/memory.py [--mode cached] [--image-size 96] [--epochs 1] [--trials 30]
     python benchmarks/memory.py --space seed --trials 7 --epochs 8     # the cost of isolation

Runs the same study twice, one after the other, with `--isolation process` and with
`--isolation none`, each in a fresh storage, through the real command line. After each trial
line it reads the resident memory of the run's whole process tree (the run and its worker)
from /proc. Prints both columns, the ratio after the last trial / after trial 5 for each,
and the ratio of wall times process / none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, machine, table

SPACES = {"memory": str(Path(__file__).with_name("memory_space.toml")), "seed": "seed", "default": "default"}


def tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, in MiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1])
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def run_study(args, isolation: str, workdir: Path) -> tuple[float, dict[int, float], list[str]]:
    """One `study run`; returns its wall seconds, tree memory after each trial, and its trial lines."""
    command = [sys.executable, "-m", "study", "run", "--data", str(args.data), "--space", SPACES.get(args.space, args.space),
               "--study-name", "bench", "--storage", f"sqlite:///{workdir / 'bench.db'}", "--n-trials", str(args.trials),
               "--epochs", str(args.epochs), "--image-size", str(args.image_size), "--alpha", str(args.alpha),
               "--weights", args.weights, "--mode", args.mode, "--pruner", "none", "--no-augment",
               "--isolation", isolation, "--trials-per-worker", str(args.trials_per_worker)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    memory, lines = {}, []
    for line in process.stdout:
        if line.startswith("trial "):
            memory[len(memory) + 1] = tree_rss_mb(process.pid)
            lines.append(line.rstrip())
    if process.wait() != 0:
        raise SystemExit(f"study run --isolation {isolation} failed with exit code {process.returncode}")
    return time.perf_counter() - started, memory, lines


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--alpha", type=float, default=0.25)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--mode", default="cached")
    p.add_argument("--space", default="memory", help="memory (one fixed head), seed, default, or a .toml path")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--trials-per-worker", type=int, default=5, help="the run's default")
    p.add_argument("--smoke", action="store_true", help="a few generated images, weights none: checks the script runs")
    args = p.parse_args()
    if args.smoke:
        sys.path.insert(0, str(REPO))
        from tests.conftest import write_class_images

        folder = Path(tempfile.mkdtemp(prefix="study-bench-"))
        args.data = write_class_images(folder / "images", {"a": 6, "b": 6}, size=40)
        args.weights, args.image_size, args.epochs, args.trials, args.trials_per_worker = "none", 32, 1, 2, 1
    early = min(5, args.trials)
    results = {}
    for isolation in ("process", "none"):
        with tempfile.TemporaryDirectory(prefix="study-bench-") as workdir:
            results[isolation] = run_study(args, isolation, Path(workdir))
    print(f"{machine()}; {args.mode} mode, {args.image_size} px, alpha {args.alpha}, {args.epochs} epoch(s) per "
          f"trial, space {args.space}, {args.trials} trials, {args.trials_per_worker} trials per worker")
    shown = sorted({1, early, 10, 15, 20, 25, args.trials} & set(range(1, args.trials + 1)))
    rows = [[n] + [f"{results[i][1].get(n, float('nan')):.0f}" for i in ("process", "none")] for n in shown]
    rows.append(["wall seconds"] + [f"{results[i][0]:.1f}" for i in ("process", "none")])
    print(table(["after trial", "process tree RSS, isolation process (MiB)", "isolation none (MiB)"], rows))
    for isolation in ("process", "none"):
        memory = results[isolation][1]
        peak_after = max(memory[n] for n in memory if n >= early)
        print(f"isolation {isolation}: after trial {args.trials} / after trial {early} = "
              f"{memory[args.trials] / memory[early]:.3f}; highest after trial {early} / after trial {early} = "
              f"{peak_after / memory[early]:.3f}")
    print(f"ratio wall time process / none: {results['process'][0] / results['none'][0]:.3f}; "
          f"memory after trial {args.trials} process / none: "
          f"{results['process'][1][args.trials] / results['none'][1][args.trials]:.3f}")


if __name__ == "__main__":
    main()
