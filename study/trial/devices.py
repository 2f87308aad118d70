"""Which device the trials train on, said in one line before the first trial.

Two views are compared: the GPUs the Keras backend sees (TensorFlow, JAX or PyTorch, asked in
the trial worker, which owns the GPU) and the GPUs `nvidia-smi` lists (asked in the run, which
never imports the backend). When the driver sees a GPU that the backend cannot use, the usual
cause on Linux is a CPU-only build or missing CUDA libraries: the line says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

GPU_EXTRA_HINT = "pip install -e '.[gpu]' (tensorflow[and-cuda], the CUDA libraries as wheels)"
GPU_HINTS = {"tensorflow": GPU_EXTRA_HINT,
             "jax": "pip install 'jax[cuda12]' (JAX with its CUDA libraries as wheels)",
             "torch": "pip install torch from a CUDA index (https://pytorch.org/get-started/locally/)"}
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


@dataclass(frozen=True)
class SmiGpu:
    """One GPU as nvidia-smi lists it."""

    index: str
    name: str
    memory_mib: int | None


def nvidia_smi_gpus(timeout: float = 20) -> list[SmiGpu]:
    """This machine's NVIDIA GPUs according to nvidia-smi; empty when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return parse_nvidia_smi(result.stdout)


def parse_nvidia_smi(text: str) -> list[SmiGpu]:
    """`0, NVIDIA H200, 143771` lines -> SmiGpu records (malformed lines are skipped)."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        memory = parts[2] if len(parts) > 2 else ""
        gpus.append(SmiGpu(parts[0], parts[1], int(float(memory)) if memory.replace(".", "", 1).isdigit() else None))
    return gpus


def skip_graph_rewrites_on_cpu() -> None:
    """Under TensorFlow with no GPU, trace graphs without Grappler's rewrites.

    On a GPU the rewrites pay (channel-first layouts, fused kernels); on a CPU a MobileNet
    train step gains nothing measurable from them per step (32 and 96 px), while they take
    ~0.5 s of every trial's ~4 s of tracing (`benchmarks/trial_overhead.py`). Idempotent;
    other backends are left alone.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def tensorflow_gpus() -> tuple[dict, ...]:
    """In the trial worker: the GPUs TensorFlow sees, memory growth turned on for each.

    Memory growth makes TensorFlow take GPU memory as trials need it instead of all of it
    at once, so a worker's memory says what its trials use.
    """
    import tensorflow as tf

    details = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: the setting is fixed
            pass
        try:
            name = tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        except Exception:  # details are informative only
            name = gpu.name
        details.append({"device": gpu.name, "name": name})
    return tuple(details)


def jax_gpus() -> tuple[dict, ...]:
    """In the trial worker: the GPUs JAX sees (its memory is taken as needed, see the worker)."""
    import jax

    try:
        devices = jax.devices("gpu")
    except RuntimeError:  # no GPU platform in this jaxlib
        return ()
    return tuple({"device": f"gpu:{device.id}", "name": device.device_kind} for device in devices)


def torch_gpus() -> tuple[dict, ...]:
    """In the trial worker: the CUDA GPUs PyTorch sees."""
    import torch

    if not torch.cuda.is_available():
        return ()
    return tuple({"device": f"cuda:{index}", "name": torch.cuda.get_device_name(index)}
                 for index in range(torch.cuda.device_count()))


def backend_gpus(backend: str) -> tuple[dict, ...]:
    """The GPUs the Keras backend `backend` sees in this process."""
    return {"tensorflow": tensorflow_gpus, "jax": jax_gpus, "torch": torch_gpus}[backend]()


def device_line(tf_gpus, smi_gpus: list[SmiGpu], cuda_visible: str | None, cpu_count: int | None,
                backend: str = "tensorflow") -> str:
    """The one line that says where trials train, and why not on a GPU the machine has.

    `tf_gpus`: what `backend_gpus(backend)` found. Under jax and torch the line names the backend."""
    name = BACKEND_NAMES.get(backend, backend)
    if tf_gpus:
        memory = {gpu.name: gpu.memory_mib for gpu in smi_gpus}
        described = []
        for gpu in tf_gpus:
            mib = memory.get(gpu["name"])
            described.append(f"{gpu['name']}" + (f" ({mib / 1024:.0f} GiB)" if mib else ""))
        return f"device: GPU: {', '.join(described)}" + ("" if backend == "tensorflow" else f" (Keras on {name})")
    cpu = f"CPU ({cpu_count} cores)" if cpu_count else "CPU"
    if not smi_gpus:
        return f"device: {cpu}: {name} sees no GPU"
    found = ", ".join(f"{gpu.name}" + (f" ({gpu.memory_mib / 1024:.0f} GiB)" if gpu.memory_mib else "")
                      for gpu in smi_gpus)
    if cuda_visible is not None and cuda_visible.strip() in ("", "-1"):
        return (f"device: {cpu}: nvidia-smi finds {found}, but CUDA_VISIBLE_DEVICES={cuda_visible!r} hides it"
                + ("" if backend == "tensorflow" else f" (Keras on {name})"))
    return (f"device: {cpu}: {name} sees no GPU, but nvidia-smi finds {found}: {name} cannot load "
            f"the CUDA libraries; install them with {GPU_HINTS.get(backend, GPU_EXTRA_HINT)}")


def describe_devices(tf_gpus, backend: str = "tensorflow") -> str:
    """`device_line` for this machine: nvidia-smi and the environment read here."""
    return device_line(tf_gpus, nvidia_smi_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.cpu_count(), backend)
