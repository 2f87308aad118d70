"""The same trial on each installed Keras backend: fixed cost per trial and steady images/s.

Run: python benchmarks/backends.py [--images-per-class 40] [--epochs 3] [--trials 2]
One trial is the study's own trial path (`study.trial.job.TrialTrainer.run`): MobileNet alpha
0.25 at 128 px (the shared food10 photos when present, 5 classes; generated images
otherwise) under the seven's best head, 3 x Dense(1024) at 5e-5, fine-tuned, batch 32, no
augmentation. Each backend runs in its own process (Keras fixes its backend at import), one
after another on the same arrays, `--trials` trials each; a GPU is used where the backend
sees one. Per backend: the first trial's and the later trials' fixed cost (wall time minus
epochs x the median epoch after the first), and training images per second in a steady
epoch. Ratios are to tensorflow (or to the first backend measured when it is absent).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, REPO, machine, steady_epoch_seconds, table

BACKENDS = ("tensorflow", "jax", "torch")
HEAD = {"head_depth": 3, "dense_units": 1024, "dropout": 0.5, "learning_rate": 5e-5}


def write_images(args, folder: Path) -> Path:
    """The benchmark's image folder: a food10 subset when present, else generated images."""
    if args.smoke or not DEFAULT_DATA.is_dir():
        sys.path.insert(0, str(REPO))
        from tests.conftest import write_class_images

        return write_class_images(folder / "images", {f"c{k}": args.images_per_class for k in range(5)},
                                  size=args.image_size)
    images = folder / "images"
    for name in sorted(p.name for p in DEFAULT_DATA.iterdir() if p.is_dir())[:5]:
        (images / name).mkdir(parents=True)
        for path in sorted((DEFAULT_DATA / name).iterdir())[:args.images_per_class]:
            (images / name / path.name).symlink_to(path)
    return images


def child(args) -> None:
    """In a process whose KERAS_BACKEND is set: train the trials, print one JSON line."""
    import keras

    from study.config import AugmentConfig, SplitConfig, TrainConfig
    from study.data.array_cache import write_image_cache
    from study.data.images import load_splits
    from study.trial.devices import backend_gpus
    from study.trial.fit import EpochLog
    from study.trial.job import RunSetup, TrialHooks, TrialJob, TrialTrainer
    from study.trial.model import check_weights

    backend = keras.backend.backend()
    gpus = backend_gpus(backend)
    workdir = Path(args.workdir)
    data = load_splits(workdir / "images", args.image_size, SplitConfig(), seed=0, warn=lambda line: None)
    cache = write_image_cache(data, SplitConfig(), args.image_size, workdir / f"cache-{backend}")
    weights = "none" if args.smoke else args.weights
    resolved = check_weights(weights, 0.25, args.image_size)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size, alpha=0.25,
                        weights=weights, augment=AugmentConfig(enabled=False))
    setup = RunSetup(train=train, class_names=tuple(data.class_names), images_dir=str(cache),
                     data_root=str(data.root), data_fingerprint=data.fingerprint, split_seed=data.seed,
                     resolved_weights=resolved)
    trainer, trials = TrialTrainer(), []
    for number in range(args.trials):
        started = time.perf_counter()
        result = trainer.run(setup, TrialJob(number, dict(HEAD), seed=number), TrialHooks(), EpochLog())
        wall = time.perf_counter() - started
        steady = steady_epoch_seconds(result.epoch_seconds)
        steps = -(-len(data.y["train"]) // args.batch_size)
        trials.append({"fixed": wall - len(result.epoch_seconds) * steady,
                       "images_per_s": steps * args.batch_size / steady, "accuracy": result.best_val_accuracy})
        trainer.release()
    print(json.dumps({"backend": backend, "device": gpus[0]["name"] if gpus else "CPU", "trials": trials,
                      "train_images": len(data.y["train"])}))


def main() -> None:
    from common import parser

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--images-per-class", type=int, default=40)
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse_hidden())
    p.add_argument("--workdir")
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.smoke:
        args.image_size, args.epochs, args.images_per_class, args.trials = 32, 2, 8, 1
    installed = [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="study-backends-") as folder:
        write_images(args, Path(folder))
        for backend in installed:
            command = [sys.executable, __file__, "--child", "--workdir", folder, "--image-size", str(args.image_size),
                       "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--trials",
                       str(args.trials), "--weights", str(args.weights)] + (["--smoke"] if args.smoke else [])
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                print(f"{backend}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    if not results:
        raise SystemExit("no backend could train")
    reference = "tensorflow" if "tensorflow" in results else next(iter(results))
    ref = results[reference]["trials"]
    ref_fixed, ref_speed = ref[0]["fixed"], statistics.median(t["images_per_s"] for t in ref)
    for backend, result in results.items():
        trials = result["trials"]
        later = statistics.median(t["fixed"] for t in trials[1:]) if len(trials) > 1 else float("nan")
        speed = statistics.median(t["images_per_s"] for t in trials)
        rows.append([backend, result["device"], f"{trials[0]['fixed']:.1f}", f"{later:.1f}", f"{speed:.0f}",
                     f"{trials[0]['fixed'] / ref_fixed:.2f}", f"{speed / ref_speed:.2f}",
                     f"{max(t['accuracy'] for t in trials):.3f}"])
    print(machine())
    print(f"MobileNet alpha 0.25, {args.image_size} px, head 3 x Dense(1024), batch {args.batch_size}, "
          f"{args.epochs} epochs, {results[reference]['train_images']} training images, "
          f"{args.trials} trial(s) per backend")
    print(table(["backend", "device", "fixed cost, first trial (s)", "fixed cost, later trials (s)",
                 "steady images/s", f"fixed cost / {reference}", f"images/s / {reference}", "best val acc"], rows))
    summary = ", ".join(f"{backend} {float(row[6]):.2f}x images/s, {float(row[5]):.2f}x fixed cost"
                        for backend, row in zip(results, rows) if backend != reference)
    print(f"ratio to {reference}: {summary or 'only one backend is installed'}")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
