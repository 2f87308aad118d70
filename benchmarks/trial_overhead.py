"""Where a trial's time goes outside its epochs: the trial path before and after, side by side.

Run: python benchmarks/trial_overhead.py [--trials 6] [--food10]
The demo's study shape (generated shapes, untrained alpha-0.25 MobileNet at 32 px, batch 16,
8 epochs, the seven's heads and then smaller ones) trains trial by trial in one process,
alternating the two paths on the same heads and seeds:
- before: the Keras calls a trial made before the fixed cost was cut: `fit` with
  `validation_data` over batches whose last one is partial, the optimizer built lazily inside
  the first trace, Keras' Adam, then `evaluate` on the test split, the cost on an inference
  copy with its own latency trace, and `predict` for the kept test predictions, every graph
  rewritten by TensorFlow's Grappler (its default);
- after: `study.trial.job.TrialTrainer.run`, which records its own phases, then the kept
  predictions.
Both then pay the same curve figure, model save and storage writes, measured once below.
Fixed cost per trial = its wall time - its epochs x its median epoch after the first.
With --food10 (and the shared photos present), one fine-tune trial at 96 px is added.
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, machine, steady_epoch_seconds, table

HEADS = [(3, 1024, 2e-5), (3, 2048, 2e-5), (2, 1024, 2e-5), (4, 1024, 5e-5), (2, 487, 1.3e-3), (3, 96, 6.4e-3)]
PHASES = ["start", "data", "build", "first epoch beyond a steady one", "test", "predictions", "cost"]


def run_setup(images: Path, workdir: Path, *, image_size: int, epochs: int, batch: int, weights: str):
    """A run's settings over `images` decoded into the array cache, as `run` makes them."""
    from study.config import AugmentConfig, SplitConfig, TrainConfig
    from study.data.array_cache import write_image_cache
    from study.data.images import load_splits
    from study.trial.job import RunSetup

    split = SplitConfig()
    data = load_splits(images, image_size, split, seed=0, warn=lambda line: None)
    folder = write_image_cache(data, split, image_size, workdir / "image-cache")
    train = TrainConfig(epochs=epochs, batch_size=batch, image_size=image_size, alpha=0.25,
                        weights=weights, augment=AugmentConfig(enabled=False))
    return RunSetup(train=train, class_names=tuple(data.class_names), images_dir=str(folder),
                    data_root=str(data.root), data_fingerprint=data.fingerprint, split_seed=data.seed,
                    resolved_weights=None if weights == "none" else weights)


def before(setup, params: dict, seed: int) -> tuple[dict, list[float]]:
    """One trial the way the trial path made it before: phases and epoch seconds."""
    import keras
    import numpy as np
    import tensorflow as tf

    from study.data.array_cache import read_split_arrays
    from study.data.images import make_dataset
    from study.store.predictions import make_predictions
    from study.trial.cost import inference_copy, multiply_adds, parameter_counts, saved_bytes
    from study.trial.model import add_head, build_base

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})  # after() turns it off
    phases, epochs = {}, []

    def clock(name, started):
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
        return time.perf_counter()

    t = time.perf_counter()
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    t = clock("start", t)
    x, y = read_split_arrays(Path(setup.images_dir))
    batch = setup.train.batch_size
    train = make_dataset(x["train"], y["train"], batch, shuffle=True, seed=seed)
    val, test = make_dataset(x["val"], y["val"], batch), make_dataset(x["test"], y["test"], batch)
    t = clock("data", t)
    size = setup.train.image_size
    inputs = keras.Input((size, size, 3))
    base = build_base(size, 0.25, setup.resolved_weights)
    features = base(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), training=False)
    model = keras.Model(inputs, add_head(features, n_classes=len(setup.class_names), head_depth=params["head_depth"],
                                         dense_units=params["dense_units"], dropout=0.5))
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    t = clock("build", t)

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs.append(time.perf_counter() - self.started)

    best = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=setup.train.epochs,
                                         restore_best_weights=True)
    model.fit(train, validation_data=val, epochs=setup.train.epochs, verbose=0, shuffle=False,
              callbacks=[best, EpochTimer()])
    t = time.perf_counter()
    model.evaluate(test, verbose=0)
    t = clock("test", t)
    copy = inference_copy(model)
    parameter_counts(copy), multiply_adds(copy), saved_bytes(copy)
    call = tf.function(lambda image: copy(image, training=False), reduce_retracing=True)
    image = tf.constant(np.zeros((1, size, size, 3), np.float32))
    for _ in range(35):
        call(image).numpy()
    t = clock("cost", t)
    probabilities = model.predict(test, verbose=0)
    make_predictions(list(setup.class_names), y["test"], probabilities, x["test"])
    clock("predictions", t)
    return phases, epochs


def after(trainer, setup, params: dict, seed: int) -> tuple[dict, list[float]]:
    """One trial through today's trial path: its recorded phases and epoch seconds."""
    from study.store.record import TrialKey
    from study.trial.fit import EpochLog
    from study.trial.job import TrialHooks, TrialJob

    result = trainer.run(setup, TrialJob(0, dict(params, dropout=0.5), seed=seed), TrialHooks(), EpochLog())
    phases = dict(result.extra_attrs[TrialKey.PHASE_SECONDS])
    started = time.perf_counter()
    trainer.test_predictions()
    phases["predictions"] = time.perf_counter() - started
    return phases, result.epoch_seconds


def breakdown(phases: dict, epochs: list[float]) -> dict:
    """Phases with the first epoch split into a steady epoch's work and what it paid beyond it."""
    steady = steady_epoch_seconds(epochs)
    rows = dict(phases)
    rows["first epoch beyond a steady one"] = epochs[0] - steady
    rows["fixed cost"] = sum(phases.values()) + epochs[0] - steady
    rows["epochs at the steady rate"] = steady * len(epochs)
    return rows


def shared_costs(setup, workdir: Path) -> dict:
    """What both paths pay the same way after training: curve, storage writes, best-model save."""
    import keras
    import optuna
    from optuna.artifacts import FileSystemArtifactStore

    from study.search.trial_notes import record_trial
    from study.store.best_model import save_best_model
    from study.trial.cost import inference_copy
    from study.trial.model import build_model

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{workdir / 'bench.db'}", direction="maximize")
    trial = study.ask()
    epochs = setup.train.epochs
    history = {key: [0.5] * epochs for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):  # as the objective writes them: after every epoch
        for key, value in (("history", history), ("epoch_seconds", [0.3] * epoch), ("epochs_run", epoch),
                           ("train_seconds", 0.3 * epoch)):
            trial.set_user_attr(key, value)
        trial.report(0.5, epoch)
    for key in range(20):  # the finished trial's attributes
        trial.set_user_attr(f"attribute_{key}", 1.0)
    writes = time.perf_counter() - started
    store = FileSystemArtifactStore(str(workdir / "artifacts"))
    (workdir / "artifacts").mkdir(exist_ok=True)
    started = time.perf_counter()
    record_trial(store, trial, {"head_depth": 2}, "COMPLETE", history, 1, 0.5, "trial 0")
    curve = time.perf_counter() - started
    keras.backend.clear_session()
    model = build_model(n_classes=len(setup.class_names), image_size=setup.train.image_size, alpha=0.25,
                        weights=setup.resolved_weights, head_depth=3, dense_units=1024, dropout=0.5, learning_rate=1e-3)
    started = time.perf_counter()
    save_best_model(inference_copy(model), workdir / "best.keras", workdir / "best.json", {"trial_number": 0})
    save = time.perf_counter() - started
    return {"storage writes": writes, "curve (figure and upload)": curve, "save the best model (3 x Dense(1024))": save}


def process_start() -> float:
    """Seconds for a new Python process to import what a trial worker imports."""
    started = time.perf_counter()
    code = ("from study.backends import skip_unused_optional_imports; skip_unused_optional_imports(); "
            "import keras, tensorflow, study.trial.worker, study.trial.job")  # as the worker starts
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - started


def compare(label: str, setup, heads, rows_out: list, totals: dict) -> None:
    from study.trial.job import TrialTrainer

    trainer = TrialTrainer()
    old, new = [], []
    for index, (depth, units, rate) in enumerate(heads):
        params = {"head_depth": depth, "dense_units": units, "learning_rate": rate}
        old.append(breakdown(*before(setup, params, seed=index)))
        new.append(breakdown(*after(trainer, setup, params, seed=index)))
    for phase in PHASES + ["fixed cost", "epochs at the steady rate"]:
        was = statistics.median(row.get(phase, 0.0) for row in old)
        now = statistics.median(row.get(phase, 0.0) for row in new)
        ratio = f"{was / now:.1f}x" if now > 0.005 else "-"
        rows_out.append([f"{label}: {phase}", f"{was:.2f}", f"{now:.2f}", ratio])
    totals[label] = (statistics.median(row["fixed cost"] for row in old),
                     statistics.median(row["fixed cost"] for row in new))


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=len(HEADS), help="demo-shaped trials per path")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--food10", action="store_true", help="add one fine-tune trial on the shared food10 photos")
    p.add_argument("--smoke", action="store_true", help="one short trial per path: checks the script runs")
    args = p.parse_args()
    from study.demo import DEMO_IMAGE_PX, write_demo_images

    workdir = Path(tempfile.mkdtemp(prefix="study-overhead-"))
    heads = HEADS[: 1 if args.smoke else args.trials]
    epochs = 2 if args.smoke else args.epochs
    images = write_demo_images(workdir / "images", per_class=16 if args.smoke else 96, size=DEMO_IMAGE_PX)
    demo = run_setup(images, workdir / "demo", image_size=32, epochs=epochs, batch=16, weights="none")
    rows, totals = [], {}
    compare("demo", demo, [(d, min(u, 512) if args.smoke else u, r) for d, u, r in heads], rows, totals)
    if args.food10 and DEFAULT_DATA.is_dir() and DEFAULT_WEIGHTS.is_file():
        food = run_setup(DEFAULT_DATA, workdir / "food10", image_size=96, epochs=3, batch=32,
                         weights=str(DEFAULT_WEIGHTS))
        compare("food10 96 px", food, HEADS[:1], rows, totals)
    start = process_start()
    shared = shared_costs(demo, workdir)
    print(f"{machine()}; demo shape: {len(heads)} trials of {epochs} epochs per path, medians over trials")
    print(table(["phase (seconds per trial)", "before", "after", "before / after"], rows))
    print()
    print(table(["paid the same way by both (seconds)", "seconds"],
                [["process start and imports (once per worker)", f"{start:.2f}"]]
                + [[name, f"{value:.2f}"] for name, value in shared.items()]))
    was, now = totals["demo"]
    print(f"ratio before / after fixed cost per demo trial: {was / now:.2f}x ({was:.1f} s -> {now:.1f} s)")


if __name__ == "__main__":
    main()
