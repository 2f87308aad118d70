"""A study under JAX on a machine where TensorFlow cannot be imported: it learns, records its
backend and writes its report; PyTorch the same where it is installed.

TensorFlow is made unimportable by a `sitecustomize` module on PYTHONPATH, which every Python
process started from the test (the run, its trial workers, the report) runs at start-up.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO, write_class_images

BLOCKER = '''
import importlib.abc
import importlib.machinery
import sys


class Unimportable(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked by the test)", name=spec.name)

    def exec_module(self, module):
        pass


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    """`import tensorflow` fails as on a machine without it; a spec without an origin is still
    given to `importlib.util.find_spec`, which PyTorch asks and expects not to raise."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, Unimportable(), origin=None)
        return None


sys.meta_path.insert(0, BlockTensorFlow())
'''

LEARNABLE_SPACE = """
n_trials = 2
[params.head_depth]
role = "fixed"
value = 1
[params.dense_units]
role = "fixed"
value = 32
[params.learning_rate]
role = "scientific"
low = 2e-3
high = 6e-3
log = true
[params.dropout]
role = "fixed"
value = 0.2
"""


def run_without_tensorflow(*args: str, cwd: Path, blocker: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}{REPO}")
    env.pop("KERAS_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def blocker_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "no-tensorflow"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def backend_study(tmp_path: Path, backend: str):
    blocker = blocker_folder(tmp_path)
    probe = run_without_tensorflow("--help", cwd=tmp_path, blocker=blocker)
    assert probe.returncode == 0, probe.stderr[-2000:]
    check = subprocess.run([sys.executable, "-c", "import tensorflow"], env=dict(os.environ, PYTHONPATH=str(blocker)),
                           capture_output=True, text=True)
    assert check.returncode != 0 and "blocked by the test" in check.stderr  # precondition: the blocker works
    write_class_images(tmp_path / "images", {"red": 40, "green": 40, "blue": 40}, size=32)
    (tmp_path / "learnable.toml").write_text(LEARNABLE_SPACE)
    result = run_without_tensorflow("run", "--data", "images", "--space", "learnable.toml", "--weights", "none",
                                    "--alpha", "0.25", "--image-size", "32", "--epochs", "8", "--batch-size", "16",
                                    "--backend", backend, cwd=tmp_path, blocker=blocker)
    assert result.returncode == 0, result.stderr[-3000:]
    # no library noise, and none of Keras' fallbacks (a model it cannot compile with XLA warns)
    assert "Warning" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    return result, blocker


@pytest.mark.slow
def test_a_study_under_jax_needs_no_tensorflow_learns_records_jax_and_is_reported(tmp_path):
    pytest.importorskip("jax")
    result, blocker = backend_study(tmp_path, "jax")
    assert "device: CPU" in result.stdout and "JAX sees no GPU" in result.stdout
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["keras_backend"] == "jax"
    assert "tensorflow" not in study.user_attrs["packages"] and "jax" in study.user_attrs["packages"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2 and all(t.user_attrs["keras_backend"] == "jax" for t in complete)
    assert study.best_value >= 0.8, [t.user_attrs.get("history", {}).get("val_accuracy") for t in complete]
    assert (tmp_path / "images.best.keras").is_file()

    report = run_without_tensorflow("report", "--study-name", "images", cwd=tmp_path, blocker=blocker)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "reports" / "images" / "README.md").read_text(encoding="utf-8")
    assert "Keras backend jax" in text and "Where the best model fails" in text
    evaluate = run_without_tensorflow("evaluate", "--data", "images", "--study-name", "images", "--json",
                                      cwd=tmp_path, blocker=blocker)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    tflite = run_without_tensorflow("export-model", "--study-name", "images", "--format", "tflite", "--out",
                                    "model.tflite", cwd=tmp_path, blocker=blocker)
    assert tflite.returncode == 2 and tflite.stderr.strip().splitlines() == [
        "study: error: --format tflite needs TensorFlow, which is not installed here (pip install tensorflow); "
        "--format keras works on any backend"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_a_study_under_torch_needs_no_tensorflow_and_records_torch(tmp_path):
    result, _ = backend_study(tmp_path, "torch")
    assert "PyTorch sees no GPU" in result.stdout or "(Keras on PyTorch)" in result.stdout
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["keras_backend"] == "torch" and study.best_value >= 0.8
