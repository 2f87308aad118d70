"""Where trials train: the device line, nvidia-smi's view against TensorFlow's, mixed precision and XLA."""

from __future__ import annotations

import os
import shutil

import optuna
import pytest

from study.trial.devices import GPU_EXTRA_HINT, SmiGpu, device_line, parse_nvidia_smi
from tests.commands import TINY_RUN, study_cli
from tests.conftest import SMALL_SPACE, write_class_images

H200 = SmiGpu("0", "NVIDIA H200", 143771)


def test_nvidia_smi_rows_are_parsed_and_junk_is_skipped():
    text = "0, NVIDIA H200, 143771\n1, NVIDIA A10G, 23028\nNo devices were found\n2, Tesla T4, [N/A]\n"
    assert parse_nvidia_smi(text) == [H200, SmiGpu("1", "NVIDIA A10G", 23028), SmiGpu("2", "Tesla T4", None)]


def test_the_device_line_names_the_gpu_tensorflow_trains_on():
    line = device_line([{"device": "/physical_device:GPU:0", "name": "NVIDIA H200"}], [H200], None, 16)
    assert line == "device: GPU: NVIDIA H200 (140 GiB)"


def test_without_any_gpu_the_line_says_cpu():
    assert device_line((), [], None, 2) == "device: CPU (2 cores): TensorFlow sees no GPU"


def test_a_gpu_tensorflow_cannot_use_is_explained_in_one_line():
    line = device_line((), [H200], None, 16)
    assert "\n" not in line and line.startswith("device: CPU (16 cores): TensorFlow sees no GPU, but nvidia-smi finds "
                                                "NVIDIA H200 (140 GiB)")
    assert line.endswith(GPU_EXTRA_HINT)
    hidden = device_line((), [H200], "", 16)
    assert hidden == "device: CPU (16 cores): nvidia-smi finds NVIDIA H200 (140 GiB), but CUDA_VISIBLE_DEVICES='' hides it"


def test_xla_is_opt_in():
    from study.trial.model import build_model

    common = dict(n_classes=2, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=8, dropout=0.5,
                  learning_rate=1e-3)
    assert build_model(**common).jit_compile is False
    assert build_model(**common, jit=True).jit_compile is True


def tiny_study(tmp_path) -> list[str]:
    write_class_images(tmp_path / "images", {"a": 8, "b": 8})
    (tmp_path / "small.toml").write_text("n_trials = 1\n" + SMALL_SPACE)
    return ["run", "--data", "images", "--space", "small.toml", *TINY_RUN[2:], "--n-trials", "1"]


@pytest.mark.slow
def test_run_says_where_it_trains_and_the_study_keeps_it(tmp_path, monkeypatch):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)  # the default backend
    result = study_cli(*tiny_study(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = f"device: CPU ({os.cpu_count()} cores): TensorFlow sees no GPU"
    assert line in result.stdout.splitlines()
    assert result.stdout.index(line) < result.stdout.index("trial   0")  # said before the first trial
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db")
    assert study.user_attrs["device"] == line and study.user_attrs["gpus"] == []
    assert study.user_attrs["keras_backend"] == "tensorflow"
    assert {t.user_attrs["keras_backend"] for t in study.trials} == {"tensorflow"}


@pytest.mark.slow
def test_a_gpu_that_tensorflow_cannot_use_is_explained(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '0, NVIDIA H200, 143771'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    result = study_cli(*tiny_study(tmp_path), cwd=tmp_path)
    mixed = study_cli(*tiny_study(tmp_path), "--precision", "mixed", "--study-name", "mixed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("device: ")]
    assert len(lines) == 1 and "TensorFlow sees no GPU, but nvidia-smi finds NVIDIA H200 (140 GiB)" in lines[0]
    assert "pip install -e '.[gpu]'" in lines[0]
    assert mixed.returncode == 2 and "Traceback" not in mixed.stderr
    assert mixed.stderr.strip().splitlines()[-1] == ("study: error: --precision mixed needs a GPU, "
                                                     "and TensorFlow sees none on this machine")


def test_under_jax_and_torch_the_line_names_the_backend_and_its_own_cuda_install():
    assert device_line((), [], None, 2, "jax") == "device: CPU (2 cores): JAX sees no GPU"
    gpu = device_line([{"device": "gpu:0", "name": "NVIDIA H200"}], [H200], None, 16, "jax")
    assert gpu == "device: GPU: NVIDIA H200 (140 GiB) (Keras on JAX)"
    unusable = device_line((), [H200], None, 16, "torch")
    assert unusable.startswith("device: CPU (16 cores): PyTorch sees no GPU, but nvidia-smi finds NVIDIA H200")
    assert "pip install torch from a CUDA index" in unusable and GPU_EXTRA_HINT not in unusable


def test_graph_rewrites_are_skipped_on_a_cpu_and_kept_on_a_gpu(monkeypatch):
    import tensorflow as tf

    from study.trial.devices import skip_graph_rewrites_on_cpu

    def meta_optimizer_off() -> bool:
        return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    try:
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
        skip_graph_rewrites_on_cpu()
        assert not meta_optimizer_off()  # a GPU: the layouts and fused kernels are worth the rewrites
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
        skip_graph_rewrites_on_cpu()
        assert meta_optimizer_off()
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
