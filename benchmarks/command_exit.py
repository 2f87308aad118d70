"""The end of a command that imported TensorFlow: the interpreter's teardown with and without `gc.freeze()`.

Run: python benchmarks/command_exit.py [--rounds 5]
Each round starts two processes, alternating which goes first, that do what `evaluate` or
`export-model` does before it exits (import Keras, build an untrained alpha-0.25 MobileNet at
32 px, predict four images) and print the time; one then returns as before, the other first
calls `gc.freeze()`, as `python -m study` now does after its command. Measured per process:
from that printed time to the process's exit, as the parent sees it. Prints the medians and
their ratio. `--smoke` runs one round that imports only NumPy (its numbers mean nothing).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from common import machine, table

WORK = ("import keras, numpy as np\n"
        "model = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None)\n"
        "model.predict(np.zeros((4, 32, 32, 3)), verbose=0)\n")
SMOKE_WORK = "import numpy\n"
PATHS = {"plain exit": "", "gc.freeze() first": "import gc; gc.freeze()\n"}


def exit_seconds(work: str, before_exit: str) -> float:
    """Seconds from the child's last line to its exit, as seen from here."""
    code = f"{work}import time\nprint(time.time(), flush=True)\n{before_exit}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    ended = time.time()
    return ended - float(child.stdout.split()[-1])


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="one round importing only NumPy: checks the script runs")
    args = p.parse_args()
    work = SMOKE_WORK if args.smoke else WORK
    seconds: dict[str, list[float]] = {name: [] for name in PATHS}
    for round_number in range(1 if args.smoke else args.rounds):
        order = list(PATHS) if round_number % 2 == 0 else list(PATHS)[::-1]
        for name in order:
            seconds[name].append(exit_seconds(work, PATHS[name]))
    print(f"{machine()}; {'smoke: NumPy only' if args.smoke else 'Keras, a MobileNet built and run'}, "
          f"{len(seconds['plain exit'])} round(s)")
    print(table(["exit", "median s", "each s"],
                [[name, f"{statistics.median(v):.2f}", ", ".join(f"{s:.2f}" for s in v)] for name, v in seconds.items()]))
    plain, frozen = (statistics.median(seconds[name]) for name in PATHS)
    print(f"ratio plain / frozen exit: {plain / max(frozen, 1e-3):.1f}x ({plain:.2f} s -> {frozen:.2f} s)")


if __name__ == "__main__":
    main()
