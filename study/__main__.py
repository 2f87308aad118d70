"""Entry point for `python -m study`."""

import gc

from study.cli import main

# The guard matters: a trial worker started with `spawn` imports this module as __mp_main__.
if __name__ == "__main__":
    code = main(filter_stderr=True)
    # Everything the command made lives until the exit now: out of the collector's reach, the
    # interpreter's last collections no longer walk the objects of TensorFlow and Keras (~1.1 s
    # at the end of every command that imported them; benchmarks/command_exit.py).
    gc.freeze()
    raise SystemExit(code)
