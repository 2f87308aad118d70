"""A Keras process's start: `import keras` as is, and without the optional imports a study never uses.

Run: python benchmarks/keras_import.py [--rounds 5]
At start-up, TensorFlow and Keras import JAX (TFLite's JAX converter, Keras' Orbax callback),
pandas (DataFrames as inputs) and matplotlib (Keras' image-gallery plots) when they are
installed; `study` refuses those imports to those importers only
(`study.backends.skip_unused_optional_imports`, installed by every command and trial worker that
trains or loads models). Each round starts two processes, alternating which goes first; each
times its own `import keras` under the tensorflow backend and says which of the three packages
ended up imported. Prints the medians and their ratio. `--smoke` runs one round that imports
only NumPy (its numbers mean nothing).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from common import REPO, machine, table

CHILD = ("import json, sys, time\n{before}"
         "started = time.perf_counter()\nimport {module}\nseconds = time.perf_counter() - started\n"
         "print(json.dumps({{'seconds': seconds, 'imported': [name for name in ('jax', 'pandas', 'matplotlib')\n"
         "                                                   if name in sys.modules]}}))\n")
PATHS = {"import keras": "",
         "study's activate, then import keras": "from study.backends import activate\nactivate('tensorflow')\n"}


def child(module: str, before: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", CHILD.format(before=before, module=module)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="one round importing only NumPy: checks the script runs")
    args = p.parse_args()
    module = "numpy" if args.smoke else "keras"
    seconds: dict[str, list[float]] = {name: [] for name in PATHS}
    imported: dict[str, set[str]] = {name: set() for name in PATHS}
    for round_number in range(1 if args.smoke else args.rounds):
        order = list(PATHS) if round_number % 2 == 0 else list(PATHS)[::-1]
        for name in order:
            result = child(module, PATHS[name])
            seconds[name].append(result["seconds"])
            imported[name].add(", ".join(result["imported"]) or "none")
    print(f"{machine()}; {'smoke: NumPy only' if args.smoke else 'import keras, tensorflow backend'}, "
          f"{len(seconds['import keras'])} round(s)")
    print(table(["path", "median s", "each s", "of jax, pandas, matplotlib imported"],
                [[name, f"{statistics.median(v):.2f}", ", ".join(f"{s:.2f}" for s in v),
                  " / ".join(sorted(imported[name]))]
                 for name, v in seconds.items()]))
    plain, skipped = (statistics.median(seconds[name]) for name in PATHS)
    print(f"ratio plain / study's import: {plain / max(skipped, 1e-3):.2f}x ({plain:.2f} s -> {skipped:.2f} s)")


if __name__ == "__main__":
    main()
