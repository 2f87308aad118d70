"""Entry point for `python -m study`."""

from study.cli import main

# The guard matters: a trial worker started with `spawn` imports this module as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main(filter_stderr=True))
