"""One trial's training from plain values, in whichever process runs it (no Optuna here).

`RunSetup` is what every trial of a run shares (settings, where the memory-mapped images and
features are); `TrialJob` is one trial (its number, parameters and seed). `prepare_run`
checks the weights and the device and computes the cached features once per run;
`train_trial` builds the model, fits it while handing each epoch to `TrialHooks`, restores
the best epoch and measures test accuracy. The trial worker process and the in-process
runtime both call these, so the two isolation modes train identically.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from study.config import TrainConfig
from study.store.record import TrialKey, kept_model_name
from study.trial.cost import inference_copy, measure_cost
from study.trial.fit import EpochLog, fit_best_epoch
from study.trial.model import count_params
from study.trial.recipe import Recipe


@dataclass(frozen=True)
class RunSetup:
    """What every trial of a run shares; plain values, so it crosses process boundaries."""

    train: TrainConfig
    class_names: tuple[str, ...]
    images_dir: str  # image-cache folder of the decoded splits
    data_root: str
    data_fingerprint: str
    split_seed: int
    feature_cache_root: str | None = None  # cached modes: where base outputs are kept
    resolved_weights: str | None = None  # set by prepare_run: None, "imagenet" or a file path
    features_dir: str | None = None  # set by prepare_run in cached modes
    verbose: bool = False
    image_dirs: tuple[tuple[int, str], ...] = ()  # (size, image-cache folder) of each size the space searches
    shapes: tuple[tuple[float, int], ...] = ()  # (alpha, image size) pairs the space can give; () = only the run's

    def all_shapes(self) -> tuple[tuple[float, int], ...]:
        return self.shapes or ((self.train.alpha, self.train.image_size),)

    def images_dir_for(self, image_size: int) -> str:
        """The image-cache folder of one image size."""
        return dict(self.image_dirs).get(image_size, self.images_dir)

    def shape_of(self, params: dict) -> tuple[float, int]:
        """(alpha, image size) of a trial: its own when the space searches them, else the run's."""
        return float(params.get("alpha", self.train.alpha)), int(params.get("image_size", self.train.image_size))

    def is_default_shape(self, params: dict) -> bool:
        return self.shape_of(params) == (self.train.alpha, self.train.image_size)

    @property
    def uses_features(self) -> bool:
        return self.train.mode in ("cached", "two-stage")


@dataclass(frozen=True)
class TrialJob:
    """One trial: the sampled values and how to train them."""

    number: int
    params: dict
    seed: int
    kind: str = "search"  # "search": the run's mode; "stage2": head on features, then fine-tune the base
    unfreeze_blocks: int = 13  # stage2: top MobileNet blocks trained
    lr_factor: float = 0.1  # stage2: fine-tuning learning rate = the head's x this
    timeout: float | None = None  # seconds; checked between batches in-process, enforced by the parent otherwise
    patience: int | None = None  # stop once this many epochs brought no better validation accuracy
    holdout_dir: str | None = None  # confirm --holdout: x.npy / y.npy of images no trial saw; scored after training
    keep_model_dir: str | None = None  # save the trial's inference model here as trial-<K>.keras (front candidates)


@dataclass(frozen=True)
class Prepared:
    """What `prepare_run` found and made: weights, devices, cached features."""

    resolved_weights: str | None
    gpus: tuple[dict, ...]  # {"device": "/physical_device:GPU:0", "name": "NVIDIA H200"} per GPU the backend sees
    features_dir: str | None = None
    feature_shape: tuple[int, ...] = ()
    feature_rows: int = 0
    features_computed: bool = False
    seconds: float = 0.0
    device: str = ""  # the run's one-line description, added by the run (see study.trial.devices)
    backend: str = "tensorflow"  # the Keras backend the trials train on


@dataclass
class TrialResult:
    """A finished fit: its curve, best epoch and test accuracy, and the process's memory."""

    history: dict[str, list[float]]
    epoch_seconds: list[float]
    train_seconds: float
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float
    peak_rss_mb: float
    rss_mb: float
    extra_attrs: dict = field(default_factory=dict)


class PhaseClock:
    """Seconds spent in each named phase of a trial outside its epochs: `with clock("build"): ...`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


@dataclass
class TrialHooks:
    """What a trial tells its caller while it trains; each hook may raise to stop the trial."""

    on_built: Callable[[int, int], None] = lambda trainable, total: None
    on_epoch: Callable[[int, EpochLog], None] = lambda epoch, log: None


class TrialTimedOut(Exception):
    """The trial ran past its time limit."""


def prepare_run(setup: RunSetup) -> Prepared:
    """Check weights and precision against this process's devices; compute or read cached features.

    Raises a StudyError subclass (one line for the user) when the run cannot start.
    """
    import keras

    from study.errors import StudyError
    from study.trial.devices import BACKEND_NAMES, backend_gpus, skip_graph_rewrites_on_cpu
    from study.trial.model import check_weights

    started = time.perf_counter()
    backend = keras.backend.backend()
    gpus = backend_gpus(backend)
    skip_graph_rewrites_on_cpu()  # before the cached features' graphs
    train = setup.train
    if train.precision == "mixed" and not gpus:
        raise StudyError(f"--precision mixed needs a GPU, and {BACKEND_NAMES.get(backend, backend)} sees none "
                         "on this machine")
    resolved = check_weights(train.weights, train.alpha, train.image_size)
    for alpha, image_size in setup.all_shapes():
        if (alpha, image_size) != (train.alpha, train.image_size):
            check_weights(train.weights, alpha, image_size)
    if not setup.uses_features or len(setup.all_shapes()) > 1:  # several shapes: features on demand
        return Prepared(resolved, gpus, seconds=time.perf_counter() - started, backend=backend)
    features = load_features(replace(setup, resolved_weights=resolved))
    return Prepared(resolved, gpus, str(features.folder), features.feature_shape, len(features.y["train"]),
                    features.computed, time.perf_counter() - started, backend=backend)


def load_splits_from_cache(setup: RunSetup):
    """The run's decoded splits, memory-mapped from the image cache."""
    from study.data.array_cache import read_split_arrays
    from study.data.images import DataSplits

    x, y = read_split_arrays(Path(setup.images_dir))
    return DataSplits(Path(setup.data_root), list(setup.class_names), x, y, [], setup.data_fingerprint,
                      setup.split_seed)


def weights_for(setup: RunSetup, alpha: float, image_size: int) -> str | None:
    """What `keras.applications.MobileNet` takes for one (alpha, image size) of the run."""
    from study.trial.model import resolve_weights

    if (alpha, image_size) == (setup.train.alpha, setup.train.image_size) and setup.resolved_weights is not None:
        return setup.resolved_weights
    return resolve_weights(setup.train.weights, alpha, image_size)


def load_features(setup: RunSetup, alpha: float | None = None, image_size: int | None = None):
    """The frozen base's outputs for every split, from the feature cache (computed on first use).

    One cache folder per (alpha, image size); without them, the run's own.
    """
    import keras

    from study.trial.features import cached_features, weights_identity
    from study.trial.model import build_base

    train = setup.train
    alpha = train.alpha if alpha is None else alpha
    image_size = train.image_size if image_size is None else image_size
    weights = weights_for(setup, alpha, image_size)
    base = build_base(image_size, alpha, weights)
    splits = load_splits_from_cache(replace(setup, images_dir=setup.images_dir_for(image_size)))
    features = cached_features(splits, base, Path(setup.feature_cache_root),
                               weights_identity(weights, train.seed), alpha=alpha,
                               image_size=image_size, augment_copies=train.augment_copies,
                               augment=train.augment, seed=train.seed)
    keras.backend.clear_session()
    return features


class TrialTrainer:
    """Trains trials one after another in this process, keeping the last model until it is saved.

    The memory maps of images and features are opened once per folder and shared by trials.
    """

    def __init__(self):
        self._arrays: dict[str, tuple] = {}
        self._feature_dirs: dict[tuple[float, int], str] = {}
        self.model = None
        self.inference_model = None  # the last trial's inference copy, made to measure its cost; saved by `save`
        self.test_probabilities = None  # the last trial's, kept for `save`
        self.setup: RunSetup | None = None
        self.job: TrialJob | None = None

    def arrays(self, folder: str):
        """(x, y) per split of an image-cache or feature-cache folder, opened once."""
        if folder not in self._arrays:
            from study.data.array_cache import read_split_arrays

            self._arrays[folder] = read_split_arrays(Path(folder))
        return self._arrays[folder]

    def release(self) -> None:
        """Drop the last trial's model (after it was saved, or before the next trial)."""
        self.model = None
        self.inference_model = None
        self.test_probabilities = None
        self.job = None

    def run(self, setup: RunSetup, job: TrialJob, hooks: TrialHooks, log: EpochLog,
            on_batch: Callable[[], None] | None = None) -> TrialResult:
        """Train one trial, recording epochs in `log` (readable after an exception).

        The model stays in `self.model` for `save` until the next trial or `release`.
        `on_batch` runs after every training batch (the in-process runtime checks for Ctrl-C).
        """
        import keras

        from study.trial.devices import skip_graph_rewrites_on_cpu
        from study.trial.inference import Predictor, accuracy_and_loss

        phases = PhaseClock()
        with phases("start"):
            skip_graph_rewrites_on_cpu()
            self.release()
            keras.backend.clear_session()  # collects the last trial's garbage itself (free_memory=True)
            keras.utils.set_random_seed(job.seed)
        self.setup, self.job = setup, job
        extra = {TrialKey.KERAS_BACKEND: keras.backend.backend()}
        with phases("data"):
            train_data, steps_per_epoch, (x, y), model_augment = self._datasets(setup, job)
        recipe = Recipe.from_params(job.params)
        switch = None
        with phases("build"):
            if job.kind == "stage2":
                model, extra[TrialKey.HEAD_ONLY_VAL_ACCURACY] = self._stage2_model(setup, job)
            else:
                model = self._search_model(setup, job.params, steps_per_epoch, augment=model_augment,
                                           augment_seed=job.seed)
                if recipe.head_warmup_epochs and setup.train.mode == "finetune":
                    switch = self._unfreezer(setup, job.params, model, steps_per_epoch)
            predictor = Predictor(model)
        hooks.on_built(*count_params(model))
        deadline = time.monotonic() + job.timeout if job.timeout else None
        batch = batch_size_of(setup, job.params)

        def after_batch() -> None:
            if on_batch is not None:
                on_batch()
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimedOut(f"timed out after {job.timeout:g} s")

        result = fit_best_epoch(model, train_data, predictor.scorer(x["val"], y["val"], batch), setup.train.epochs,
                                steps_per_epoch=steps_per_epoch, on_epoch=hooks.on_epoch, log=log,
                                verbose=2 if setup.verbose else 0, patience=job.patience,
                                on_batch=after_batch if on_batch is not None or deadline is not None else None,
                                switch_after=recipe.head_warmup_epochs, switch=switch)
        with phases("test"):
            self.test_probabilities = predictor.probabilities(x["test"], batch)
            test_accuracy, _ = accuracy_and_loss(self.test_probabilities, y["test"])
        self.model = model
        keep = Path(job.keep_model_dir) / kept_model_name(job.number) if job.keep_model_dir else None
        with phases("cost"):
            images_model = image_model(setup, job, model)  # a cached-mode head gets its base once, for both
            images_predictor = predictor if images_model is model else Predictor(images_model)
            self.inference_model = inference_copy(images_model)
            extra.update(measure_cost(self.inference_model, keep, latency=images_predictor.latency_ms))
        if job.holdout_dir:
            with phases("holdout"):
                extra.update(self._score_holdout(images_predictor, batch, Path(job.holdout_dir)))
        extra[TrialKey.PHASE_SECONDS] = phases.seconds
        return TrialResult(result.history, result.epoch_seconds, result.train_seconds, result.best_epoch,
                           result.best_val_accuracy, float(test_accuracy), peak_rss_mb(), current_rss_mb(), extra)

    @staticmethod
    def _score_holdout(predictor, batch_size: int, folder: Path) -> dict:
        """Accuracy and per-image correctness (0/1, in the folder's order) of a model that takes
        images, on held-out images."""
        import numpy as np

        x = np.load(folder / "x.npy", mmap_mode="r")
        y = np.load(folder / "y.npy")
        correct = (predictor.probabilities(x, batch_size).argmax(axis=1) == y).astype(int)
        return {TrialKey.HOLDOUT_ACCURACY: float(correct.mean()), TrialKey.HOLDOUT_CORRECT: correct.tolist()}

    def features_dir(self, setup: RunSetup, params: dict) -> str:
        """The feature-cache folder of a trial's (alpha, image size), computed on first use."""
        if setup.is_default_shape(params) and setup.features_dir:
            return setup.features_dir
        shape = setup.shape_of(params)
        if shape not in self._feature_dirs:
            self._feature_dirs[shape] = str(load_features(setup, *shape).folder)
        return self._feature_dirs[shape]

    def _search_model(self, setup: RunSetup, params: dict, steps_per_epoch: int = 1, augment=None,
                      augment_seed: int = 0):
        from study.trial.model import MOBILENET_BLOCKS, build_head, build_model

        train = setup.train
        alpha, image_size = setup.shape_of(params)
        recipe = Recipe.from_params(params)
        if setup.uses_features:
            x, _ = self.arrays(self.features_dir(setup, params))
            return build_head(feature_shape=tuple(x["train"].shape[1:]), n_classes=len(setup.class_names),
                              head_depth=params["head_depth"], dense_units=params["dense_units"],
                              dropout=params["dropout"], learning_rate=params["learning_rate"], jit=train.jit,
                              pooling=params.get("pooling", "flatten"), recipe=recipe,
                              steps_per_epoch=steps_per_epoch, epochs=train.epochs)
        return build_model(
            n_classes=len(setup.class_names), image_size=image_size, alpha=alpha,
            weights=weights_for(setup, alpha, image_size), mode=train.mode, precision=train.precision, jit=train.jit,
            head_depth=params["head_depth"], dense_units=params["dense_units"], dropout=params["dropout"],
            learning_rate=params["learning_rate"], pooling=params.get("pooling", "flatten"),
            unfreeze_blocks=params.get("unfreeze_blocks", MOBILENET_BLOCKS), recipe=recipe,
            steps_per_epoch=steps_per_epoch, epochs=train.epochs, augment=augment, augment_seed=augment_seed,
        )

    @staticmethod
    def _unfreezer(setup: RunSetup, params: dict, model, steps_per_epoch: int):
        """What ends a head warm-up: the base's blocks join training, at the fine-tuning rate."""
        from study.trial.model import MOBILENET_BLOCKS, unfreeze_base

        def switch() -> None:
            unfreeze_base(model, params.get("unfreeze_blocks", MOBILENET_BLOCKS), params["learning_rate"],
                          Recipe.from_params(params), n_classes=len(setup.class_names),
                          steps_per_epoch=steps_per_epoch, epochs=setup.train.epochs, jit=setup.train.jit)

        return switch

    def _stage2_model(self, setup: RunSetup, job: TrialJob):
        """The head retrained on features (cheap), then put on a base whose top blocks train."""
        import keras

        from study.data.images import make_dataset, steps_per_epoch
        from study.trial.inference import Predictor
        from study.trial.model import with_base

        params, batch = job.params, batch_size_of(setup, job.params)
        x, y = self.arrays(self.features_dir(setup, params))
        steps = steps_per_epoch(len(y["train"]), batch)
        head = self._search_model(setup, params, steps)
        head_predictor = Predictor(head)
        head_fit = fit_best_epoch(
            head, make_dataset(x["train"], y["train"], batch, shuffle=True, seed=setup.train.seed, endless=True),
            head_predictor.scorer(x["val"], y["val"], batch), setup.train.epochs,
            steps_per_epoch=steps)
        keras.utils.set_random_seed(setup.train.seed)
        alpha, image_size = setup.shape_of(params)
        model = with_base(head, image_size=image_size, alpha=alpha,
                          weights=weights_for(setup, alpha, image_size),
                          learning_rate=params["learning_rate"] * job.lr_factor, unfreeze_blocks=job.unfreeze_blocks)
        return model, head_fit.best_val_accuracy

    def _datasets(self, setup: RunSetup, job: TrialJob):
        """The endless training pipeline (cached features, or images augmented for training), its
        steps per epoch, the (x, y) arrays of every split, which validation and test read
        directly, and the augmentation the model itself applies (jax and torch: on the device,
        so uint8 images cross to it; None under tensorflow, whose pipeline augments). A
        trial's own batch size and augmentation strength, when the space searches them,
        replace the run's."""
        import keras

        from study.data.images import make_dataset, steps_per_epoch

        batch = batch_size_of(setup, job.params)
        if setup.uses_features and job.kind == "search":
            x, y = self.arrays(self.features_dir(setup, job.params))
            augment = None
        else:
            x, y = self.arrays(setup.images_dir_for(setup.shape_of(job.params)[1]))
            augment = augment_of(setup, job.params)
        in_model = augment if keras.backend.backend() != "tensorflow" and job.kind == "search" else None
        train = make_dataset(x["train"], y["train"], batch, shuffle=True, augment=None if in_model else augment,
                             seed=job.seed, endless=True)
        return train, steps_per_epoch(len(y["train"]), batch), (x, y), in_model

    def save(self, model_path: str, meta_path: str, meta: dict) -> bool:
        """Save the last trial's model as the study's best (see `study.store.best_model.save_best_model`)."""
        from study.store.best_model import save_best_model

        try:
            predictions = self.test_predictions()
            # the inference copy (no optimizer state, which would triple a large head's file)
            return save_best_model(self.inference_model, Path(model_path), Path(meta_path), meta, predictions)
        finally:
            self.release()

    def test_predictions(self):
        """The last trial's class probabilities on the test split, with thumbnails of its mistakes."""
        from study.store.predictions import make_predictions

        setup, job = self.setup, self.job
        images, labels = self.arrays(setup.images_dir_for(setup.shape_of(job.params)[1]))
        return make_predictions(list(setup.class_names), labels["test"], self.test_probabilities, images["test"])


def batch_size_of(setup: RunSetup, params: dict) -> int:
    """A trial's batch size: its own when the space searches it, else the run's."""
    return int(params.get("batch_size", setup.train.batch_size))


def augment_of(setup: RunSetup, params: dict):
    """A trial's augmentation: the run's, or the default one scaled by the trial's strength."""
    from study.config import AugmentConfig

    if "augment_strength" not in params:
        return setup.train.augment
    return AugmentConfig(enabled=setup.train.augment.enabled).scaled(float(params["augment_strength"]))


def image_model(setup: RunSetup, job: TrialJob, model):
    """`model` as one that takes images: a head trained on cached features gets its base."""
    if not (setup.uses_features and job.kind == "search"):
        return model
    from study.trial.model import with_base

    alpha, image_size = setup.shape_of(job.params)
    return with_base(model, image_size=image_size, alpha=alpha, weights=weights_for(setup, alpha, image_size),
                     learning_rate=job.params["learning_rate"])


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return peak_rss_mb()
