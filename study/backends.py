"""Which Keras backend trains a study's models: tensorflow, jax or torch.

Keras 3 reads its backend once, from `KERAS_BACKEND`, when it is first imported, and trial
workers inherit the environment of the command that starts them. So a command chooses the
backend before anything imports Keras (`activate`), and every process it starts trains under
it. Choosing costs no import of the backend itself: whether one is installed is asked of the
import system only.

`skip_unused_optional_imports` keeps Keras and TensorFlow from importing JAX, pandas and
matplotlib at start-up for features a study never uses (see there).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

from study.errors import StudyError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
ENVIRONMENT_VARIABLE = "KERAS_BACKEND"
INSTALL_HINTS = {
    "tensorflow": "pip install -e . (TensorFlow comes with the default install)",
    "jax": "pip install 'jax[cpu]' (or 'jax[cuda12]' on an NVIDIA GPU); see README, Backends",
    "torch": "pip install torch; see README, Backends",
}
DISPLAY_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def requested_backend(flag: str | None) -> str:
    """The backend a command asked for: `--backend`, else `KERAS_BACKEND`, else tensorflow."""
    name = flag or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_BACKEND
    return name.strip().lower()


def is_installed(backend: str) -> bool:
    """Whether the backend's package is installed here: found on disk, not imported."""
    try:
        spec = importlib.util.find_spec(backend)
    except (ImportError, ValueError):  # a finder that refuses the name, or a broken package
        return False
    # A spec without a file or folder is no installed package (an import hook that blocks it).
    return spec is not None and bool(spec.origin or spec.submodule_search_locations)


def check_backend(backend: str, source: str = "--backend") -> str:
    """`backend` when it is one Keras can train on here; otherwise a StudyError naming it."""
    if backend not in BACKENDS:
        raise StudyError(f"{source} {backend!r}: expected one of {', '.join(BACKENDS)}")
    if not is_installed(backend):
        raise StudyError(f"{source} {backend}: {DISPLAY_NAMES[backend]} is not installed here "
                         f"(install it with {INSTALL_HINTS[backend]}, or choose another with --backend or KERAS_BACKEND)")
    return backend


def activate(flag: str | None) -> str:
    """Choose the backend for this process and every worker it starts; returns its name.

    Raises a StudyError when the backend is unknown or not installed, or when Keras was
    already imported here under another backend (it cannot switch).
    """
    source = "--backend" if flag else (ENVIRONMENT_VARIABLE if os.environ.get(ENVIRONMENT_VARIABLE)
                                       else "the default backend")
    backend = check_backend(requested_backend(flag), source)
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise StudyError(f"--backend {backend}: Keras is already running on {current} in this process")
    os.environ[ENVIRONMENT_VARIABLE] = backend
    skip_unused_optional_imports()
    return backend


def activate_for_reading(recorded: str | None = None) -> str:
    """The backend for a command that only loads saved models (evaluate, ensemble, export-model).

    `KERAS_BACKEND` when set; else the first installed of the one the study trained on
    (`recorded`), tensorflow, jax and torch (a saved `.keras` model loads under any of them).
    """
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return activate(None)
    candidates = ([recorded] if recorded in BACKENDS else []) + list(BACKENDS)
    for backend in candidates:
        if is_installed(backend):
            return activate(backend)
    raise StudyError(f"no Keras backend is installed here (expected one of {', '.join(BACKENDS)}; "
                     f"{INSTALL_HINTS[DEFAULT_BACKEND]})")


def current_backend() -> str:
    """The backend Keras runs on in this process (imports Keras)."""
    import keras

    return keras.backend.backend()


# Modules that TensorFlow and Keras import at start-up, each importing an optional package when
# it is installed, for a feature a study never uses: converting JAX functions to TFLite,
# patching JAX for Orbax checkpoints, pandas DataFrames as model inputs, Keras' gallery plots.
# Those imports were ~0.85 s of the ~4 s that `import keras` takes under TensorFlow with JAX
# installed (benchmarks/keras_import.py). Only these importers are refused: the packages stay
# importable, and our own figures and reports import matplotlib and pandas as usual.
UNUSED_OPTIONAL_IMPORTS = {
    "tensorflow.lite.python.util": "jax",
    "keras.src.callbacks.orbax_checkpoint": "jax",
    "keras.src.trainers.data_adapters.array_slicing": "pandas",
    "keras.src.visualization.plot_image_gallery": "matplotlib",
    "keras.src.visualization.plot_bounding_box_gallery": "matplotlib",
}


class SkipUnusedOptionalImports(importlib.abc.MetaPathFinder):
    """Makes the imports above fail in their importers, whose `except ImportError` goes without."""

    refused = frozenset(UNUSED_OPTIONAL_IMPORTS.values())

    def find_spec(self, name, path=None, target=None):
        if name not in self.refused:  # `import matplotlib.pyplot` asks for `matplotlib` first
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back
        if frame is not None and UNUSED_OPTIONAL_IMPORTS.get(frame.f_globals.get("__name__")) == name:
            raise ModuleNotFoundError(f"{name} is not needed by {frame.f_globals['__name__']} here", name=name)
        return None


def skip_unused_optional_imports() -> None:
    """Install the finder above once in this process, before Keras is imported."""
    if not any(isinstance(finder, SkipUnusedOptionalImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, SkipUnusedOptionalImports())
