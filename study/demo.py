"""`python -m study demo`: a real study on synthetic images, then its report, in a few minutes.

The images are generated: four classes, each a shape in its own colour (jittered, at a random
place and size, on noise), written as PNG files to a new temporary folder. A model learns
them within the demo's budget even from untrained MobileNet weights (no download, no GPU),
so the demo shows what a study does on real photos: the original seven first, then trials
the sampler chooses, hopeless ones pruned, the best model kept, and the markdown report with
where that model fails. Its accuracy says nothing about photos.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from study.config import AugmentConfig, RunConfig, TrainConfig

# Each class: a shape and the colour it is drawn in.
DEMO_CLASSES = {"red_circle": ("circle", (220, 40, 40)), "green_square": ("square", (40, 200, 60)),
                "blue_triangle": ("triangle", (50, 80, 230)), "yellow_stripes": ("stripes", (230, 210, 40))}
DEMO_IMAGE_PX = 40
DEMO_TRIALS = 11  # the original seven, then four the sampler chooses
DEMO_EPOCHS = 8
# Images per class: enough training steps per epoch that the searched learning rates reach
# 0.9 within the 8 epochs on any machine (at 64, one machine's rounding left the best at 0.875).
DEMO_PER_CLASS = 96


def draw_shape(kind: str, colour: tuple[int, int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """One size x size RGB image: a `kind` shape in `colour` (jittered) at a random place, on noise."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    rows, cols = np.mgrid[0:size, 0:size]
    center = rng.uniform(size * 0.35, size * 0.65, 2)
    radius = rng.uniform(size * 0.25, size * 0.4)
    if kind == "circle":
        mask = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < radius ** 2
    elif kind == "square":
        mask = (abs(rows - center[0]) < radius) & (abs(cols - center[1]) < radius)
    elif kind == "triangle":
        top = center[0] - radius
        mask = (rows > top) & (rows < center[0] + radius) & (abs(cols - center[1]) < (rows - top) / 2)
    else:
        period = int(rng.integers(5, 9))
        mask = (cols + int(rng.integers(0, period))) % period < period // 2
    jitter = rng.integers(-25, 26, 3)
    image[mask] = np.clip(np.asarray(colour) + jitter, 0, 255).astype(np.uint8)
    return image


def write_demo_images(folder: Path, per_class: int = DEMO_PER_CLASS, size: int = DEMO_IMAGE_PX, seed: int = 0) -> Path:
    """Write `per_class` PNG images of each demo class under `folder`; returns `folder`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, (kind, colour) in DEMO_CLASSES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(draw_shape(kind, colour, size, rng)).save(folder / name / f"{name}_{index:03d}.png")
    return folder


def demo_config(workdir: Path) -> RunConfig:
    """The demo study: untrained alpha-0.25 MobileNet fine-tuned at 32 px, 8 epochs, 11 trials,
    two at a time.

    The quasi-random sampler spreads its trials evenly over the space's learning-rate range,
    so the demo reaches the rates that learn whatever the machine's timing noise.
    """
    return RunConfig(
        data_dir=workdir / "images",
        space="demo",
        study_name="demo",
        storage=f"sqlite:///{workdir / 'demo.db'}",
        n_trials=DEMO_TRIALS,
        sampler="qmc",
        pruner="median",
        train=TrainConfig(epochs=DEMO_EPOCHS, batch_size=16, image_size=32, alpha=0.25, weights="none",
                          mode="finetune", augment=AugmentConfig(enabled=False)),
        trials_per_worker=DEMO_TRIALS,  # one worker start instead of three; eleven small trials fit in memory
        jobs=2,  # a trial leaves a core idle while it traces and builds: 1.5x (benchmarks/jobs.py)
        command_line="python -m study demo",
    )


def run_demo() -> int:
    """Generate the images, run the study, write its report, say where everything is."""
    from study.report.page import write_report
    from study.search.runner import run_study
    from study.store.storage import resolve_storage

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="study-demo-"))
    write_demo_images(workdir / "images")
    print(f"demo: SYNTHETIC images, not photos: {len(DEMO_CLASSES)} classes of coloured shapes "
          f"({', '.join(DEMO_CLASSES)}) written to {workdir / 'images'}; untrained MobileNet weights, 32 px, "
          f"{DEMO_EPOCHS} epochs per trial", flush=True)
    config = demo_config(workdir)
    code = run_study(config)
    if code != 0:
        return code
    readme = write_report(resolve_storage(config.storage), config.study_name, workdir / "reports")
    print(f"report: {readme}\n"
          f"demo finished in {time.perf_counter() - started:.0f} s; everything is in {workdir}. Next:\n"
          f"  optuna-dashboard {config.storage}\n"
          f"  python -m study evaluate --data {workdir / 'images'} --study-name demo --storage {config.storage}",
          flush=True)
    return 0
