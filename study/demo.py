"""`python -m study demo`: a short study on a synthetic image set, for a first look without data.

The images are generated: three classes of coloured shapes on noise, written as PNG files to a
new temporary folder. The study uses untrained MobileNet weights and tiny images so that it
finishes in a few minutes on two CPU cores; its accuracy says nothing about real photos.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from study.config import AugmentConfig, RunConfig, TrainConfig

DEMO_CLASSES = ("circle", "square", "stripes")


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One size x size RGB image of a shape of `kind` at a random place and colour, on noise."""
    image = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
    rows, cols = np.mgrid[0:size, 0:size]
    center = rng.uniform(size * 0.35, size * 0.65, 2)
    radius = rng.uniform(size * 0.2, size * 0.3)
    if kind == "circle":
        mask = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < radius ** 2
    elif kind == "square":
        mask = (abs(rows - center[0]) < radius) & (abs(cols - center[1]) < radius)
    else:
        mask = ((cols // max(2, size // 8)) % 2 == 0)
    image[mask] = rng.integers(150, 256, 3)
    return image


def write_demo_images(folder: Path, per_class: int = 30, size: int = 48, seed: int = 0) -> Path:
    """Write `per_class` PNG images of each demo class under `folder`; returns `folder`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for kind in DEMO_CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(draw_shape(kind, size, rng)).save(folder / kind / f"{kind}_{index:03d}.png")
    return folder


def demo_config(workdir: Path) -> RunConfig:
    """A short study: 32 px, untrained alpha-0.25 MobileNet fine-tuned, 3 epochs, 9 trials."""
    return RunConfig(
        data_dir=workdir / "images",
        space="default",
        study_name="demo",
        storage=f"sqlite:///{workdir / 'demo.db'}",
        n_trials=9,  # the original seven, then two the sampler chooses
        sampler="tpe",
        pruner="median",
        train=TrainConfig(epochs=3, batch_size=8, image_size=32, alpha=0.25, weights="none",
                          mode="finetune", augment=AugmentConfig(enabled=False)),
        command_line="python -m study demo",
    )


def run_demo() -> int:
    """Generate the images, run the study, say where everything is."""
    from study.runner import run_study

    workdir = Path(tempfile.mkdtemp(prefix="study-demo-"))
    write_demo_images(workdir / "images")
    print(f"demo: synthetic images (3 classes of coloured shapes, not real photos) written to "
          f"{workdir / 'images'}; untrained weights, 32 px, 3 epochs per trial", flush=True)
    config = demo_config(workdir)
    code = run_study(config)
    print(f"demo results are in {workdir} (storage {config.storage}); try:\n"
          f"  python -m study evaluate --data {workdir / 'images'} --study-name demo --storage {config.storage}\n"
          f"  optuna-dashboard {config.storage}")
    return code
