"""Run settings: frozen dataclasses whose defaults carry the reason for their value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, as the original project's (flip, rotation, zoom)."""

    enabled: bool = True  # the original augmented its training images
    flip: bool = True  # food photos have no preferred left/right
    rotation: float = 0.05  # fraction of a full turn: +-18 degrees
    zoom: float = 0.1  # +-10% zoom, a mild crop/pad

    def scaled(self, strength: float) -> "AugmentConfig":
        """Return a copy with rotation and zoom multiplied by `strength`."""
        return AugmentConfig(self.enabled, self.flip, self.rotation * strength, self.zoom * strength)


@dataclass(frozen=True)
class SplitConfig:
    """How an image folder is divided; stratified per class and fixed by the seed."""

    val_fraction: float = 0.15  # the usual 70/15/15 split
    test_fraction: float = 0.15


@dataclass(frozen=True)
class TrainConfig:
    """What every trial of a study shares: the base network, input and epoch budget."""

    epochs: int = 8  # enough to rank heads on a few thousand images; raise for final runs
    batch_size: int = 32  # Keras' default; the original's is not published
    image_size: int = 224  # MobileNet's native input, as in the original
    alpha: float = 1.0  # the original's full-width MobileNet
    weights: str = "imagenet"  # "imagenet", "none" or a path to a weights file
    mode: str = "finetune"  # the original trained the base too; "frozen", "cached", "two-stage" see README
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    augment_copies: int = 0  # cached modes: augmented passes over the training set, computed once
    precision: str = "float32"  # "mixed" (float16 compute) roughly doubles speed on recent GPUs
    jit: bool = False  # XLA: opt-in, it made the first fit 2-3x slower on a CPU (benchmarks/gpu.py)
    patience: int | None = None  # stop a trial after this many epochs without a better validation accuracy


def train_config_from_record(record: dict) -> TrainConfig:
    """The TrainConfig a study recorded (`dataclasses.asdict` of it, as stored in its attrs)."""
    record = dict(record)
    return TrainConfig(augment=AugmentConfig(**record.pop("augment")), **record)


@dataclass(frozen=True)
class RunConfig:
    """One `python -m study run` invocation."""

    data_dir: Path
    space: str = "default"  # a name in search_spaces/ or a path to a .toml file
    study_name: str | None = None  # defaults to the data folder's name
    storage: str | None = None  # defaults to sqlite:///study.db in the working folder
    artifacts: str | None = None  # --artifacts: a shared store (folder or s3://BUCKET/PREFIX), recorded on the study
    n_trials: int | None = None  # the study's total; defaults to the space file's n_trials
    timeout: float | None = None
    sampler: str = "tpe"  # Optuna's default; "qmc" explores more evenly at first
    pruner: str = "median"  # Optuna's default pruner; the seven are never pruned
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage2_top: int = 3  # two-stage: how many of the best heads are fine-tuned
    unfreeze_blocks: int = 13  # two-stage: top MobileNet blocks trained in stage 2 (13 = all)
    stage2_lr_factor: float = 0.1  # two-stage: fine-tuning learning rate = the head's x this
    heartbeat_seconds: int = 60  # RDB storages: a dead worker's trial is retried after 2 intervals
    isolation: str = "process"  # trials in recycled worker processes; "none": in this process (debugging)
    jobs: int = 1  # trials trained at once, each in its own worker process (Optuna's n_jobs)
    trials_per_worker: int = 5  # a worker starts in ~3 s; each trial leaves ~one model's weights behind (RESULTS.md)
    worker_memory_mb: float | None = None  # recycle a worker past this resident memory; None: half the machine's
    trial_timeout: float | None = None  # seconds; a longer trial is ended and fails
    verbose: bool = False
    objectives: tuple[str, ...] = ("accuracy",)  # then costs to minimise: multi-objective (no pruning)
    explicit_flags: tuple[str, ...] = ()  # "image_size", "alpha", "batch_size", "augment_strength" when given
    augment_strength: float = 1.0  # --augment-strength as given (train.augment is already scaled by it)
    keep_top: int = 0  # keep the inference models of this many best trials (for `ensemble`)
    command_line: str = ""
