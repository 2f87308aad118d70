"""Image folder -> decoded, stratified train / validation / test arrays, and their batch pipelines.

A data folder holds one sub-folder per class (any language or script) with images inside.
Every image is decoded once per run with Pillow (EXIF orientation applied, any mode turned
into RGB, resized to a square), unreadable files are skipped with one warning line each,
and the survivors are split per class with a seeded shuffle. Trials then share the arrays.
"""

from __future__ import annotations

import hashlib
import os
import sys
import unicodedata
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from study.config import AugmentConfig, SplitConfig
from study.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageFile:
    """One candidate image: where it is and which class folder it came from."""

    path: Path
    label: int


@dataclass
class DecodedFolder:
    """All readable images of a folder as one uint8 array, with labels and what was skipped."""

    root: Path
    class_names: list[str]
    images: np.ndarray  # (n, size, size, 3) uint8
    labels: np.ndarray  # (n,) int32
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A short hash of the readable files (class, name, size), stable across machines."""
        digest = hashlib.sha256()
        for path, label in zip(self.files, self.labels):
            digest.update(f"{self.class_names[label]}/{path.name}/{path.stat().st_size}\n".encode())
        return digest.hexdigest()[:16]


@dataclass
class DataSplits:
    """Decoded train / validation / test arrays of one folder, split once per run."""

    root: Path
    class_names: list[str]
    x: dict[str, np.ndarray]  # split name -> (n, size, size, 3) uint8
    y: dict[str, np.ndarray]  # split name -> (n,) int32
    skipped: list[tuple[Path, str]]
    fingerprint: str
    seed: int

    def counts(self) -> dict[str, int]:
        return {split: int(len(self.y[split])) for split in SPLITS}


def class_name(folder: Path) -> str:
    """A class folder's name in NFC form, so macOS (NFD) and Linux names compare equal."""
    return unicodedata.normalize("NFC", folder.name)


def scan_folder(root: Path) -> tuple[list[str], list[ImageFile]]:
    """List the class sub-folders of `root` and the image files inside each.

    Files whose extension is not an image's are ignored, as are hidden files and folders.
    Raises DataError when the folder does not exist or has no class sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"data folder '{root}' {what} (expected one sub-folder of images per class)")
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=class_name,
    )
    if not class_dirs:
        raise DataError(f"data folder '{root}' has no class sub-folders "
                        "(expected one sub-folder of images per class)")
    files = []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(class_dir.rglob("*")):
            if (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
                    and not any(part.startswith(".") for part in path.relative_to(class_dir).parts)):
                files.append(ImageFile(path, label))
    return [class_name(d) for d in class_dirs], files


def decode_image(path: Path, image_size: int) -> np.ndarray:
    """Read one image file as an RGB uint8 array of shape (image_size, image_size, 3).

    EXIF orientation is applied; greyscale, palette, CMYK and images with transparency are
    converted to RGB (transparent areas become white). Raises on unreadable files.
    """
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's palette/EXIF warnings say nothing useful here
        with Image.open(path) as image:
            image.seek(0)  # the first frame of an animated GIF or WebP
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            else:
                image = image.convert("RGB")
            image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)


def decode_folder(root: Path, image_size: int, warn: Callable[[str], None] | None = None) -> DecodedFolder:
    """Scan and decode every image of `root`; skip unreadable files with one warning each."""
    warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
    class_names, candidates = scan_folder(root)

    def attempt(item: ImageFile):
        try:
            return decode_image(item.path, image_size), None
        except Exception as error:  # any decoder failure means the file is unusable
            return None, f"{type(error).__name__}: {error}".splitlines()[0]

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow releases the GIL while decoding
        results = list(pool.map(attempt, candidates))
    images, labels, files, skipped = [], [], [], []
    for item, (array, reason) in zip(candidates, results):
        if array is None:
            warn(f"warning: skipping unreadable image '{item.path}': {reason}")
            skipped.append((item.path, reason))
        else:
            images.append(array)
            labels.append(item.label)
            files.append(item.path)
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return DecodedFolder(Path(root), class_names, stacked, np.asarray(labels, np.int32), files, skipped)


def split_indices(labels: np.ndarray, n_classes: int, split: SplitConfig, seed: int) -> dict[str, np.ndarray]:
    """Stratified split: per class, a seeded shuffle cut into train / val / test index arrays.

    Each class gives round(n * fraction) images, at least one, to validation and to test, and
    the rest to training. The same labels and seed always give the same split.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in range(n_classes):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = max(1, round(len(members) * split.val_fraction))
        n_test = max(1, round(len(members) * split.test_fraction))
        parts["val"].append(members[:n_val])
        parts["test"].append(members[n_val:n_val + n_test])
        parts["train"].append(members[n_val + n_test:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def minimum_images_per_class(split: SplitConfig) -> int:
    """The fewest images a class needs so that every split gets at least one."""
    n = 1
    while True:
        n_val = max(1, round(n * split.val_fraction))
        n_test = max(1, round(n * split.test_fraction))
        if n - n_val - n_test >= 1:
            return n
        n += 1


def load_splits(root: Path, image_size: int, split: SplitConfig, seed: int,
                warn: Callable[[str], None] | None = None) -> DataSplits:
    """Decode `root` once and split it; raise DataError when it cannot give three splits."""
    decoded = decode_folder(root, image_size, warn)
    check_trainable(decoded, split)
    indices = split_indices(decoded.labels, len(decoded.class_names), split, seed)
    return DataSplits(
        root=decoded.root,
        class_names=decoded.class_names,
        x={name: decoded.images[idx] for name, idx in indices.items()},
        y={name: decoded.labels[idx] for name, idx in indices.items()},
        skipped=decoded.skipped,
        fingerprint=decoded.fingerprint(),
        seed=seed,
    )


def check_trainable(decoded: DecodedFolder, split: SplitConfig) -> None:
    """Raise DataError unless the folder has two classes and enough readable images in each."""
    root = decoded.root
    if len(decoded.labels) == 0:
        extra = f" ({len(decoded.skipped)} unreadable)" if decoded.skipped else ""
        raise DataError(f"data folder '{root}' has no readable images{extra} "
                        f"(expected {', '.join(sorted(IMAGE_EXTENSIONS))} files in class sub-folders)")
    if len(decoded.class_names) < 2:
        raise DataError(f"data folder '{root}' has one class ('{decoded.class_names[0]}'); "
                        "a classifier needs at least two class sub-folders")
    needed = minimum_images_per_class(split)
    counts = np.bincount(decoded.labels, minlength=len(decoded.class_names))
    for name, count in zip(decoded.class_names, counts):
        if count < needed:
            raise DataError(
                f"class '{name}' in '{root}' has {count} readable images; the "
                f"{1 - split.val_fraction - split.test_fraction:.2f}/{split.val_fraction:.2f}/"
                f"{split.test_fraction:.2f} split needs at least {needed} per class"
            )


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 shuffle: bool = False, augment: AugmentConfig | None = None, seed: int = 0,
                 endless: bool = False):
    """A batched, prefetched tf.data pipeline over decoded arrays; augmentation only if given.

    `endless`: the examples repeat without end (reshuffled each pass) in batches of exactly
    `batch_size`, so a train step sees one batch shape and traces once; give `fit` its steps
    per epoch (`steps_per_epoch`). Each pass's last few examples open the next pass's batch.

    Under the jax and torch backends the batches are a `study.data.array_batches.ArrayBatches`
    (no TensorFlow), left uint8 for the model to cast on its device unless augmented here.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        from study.data.array_batches import ArrayBatches

        augmenter = make_augmenter(augment, seed) if augment is not None else None
        return ArrayBatches(images, labels, batch_size, shuffle=shuffle, seed=seed, endless=endless,
                            augmenter=augmenter)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if endless:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=endless)
    augmenter = make_augmenter(augment, seed) if augment is not None else None
    if augmenter is not None:
        dataset = dataset.map(lambda x, y: (augmenter(tf.cast(x, tf.float32), training=True), y))
    else:
        dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y))
    options = tf.data.Options()
    # tf.data's autotuner thread can make fit() return seconds late and distort timings.
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Training steps that show each of `examples` once per epoch on average (at least one)."""
    return max(1, -(-examples // batch_size))


def make_augmenter(augment: AugmentConfig, seed: int):
    """Keras random layers for flip, rotation and zoom, or None when augmentation is off."""
    import keras

    if not augment.enabled:
        return None
    layers = []
    if augment.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if augment.rotation > 0:
        layers.append(keras.layers.RandomRotation(augment.rotation, fill_mode="reflect", seed=seed + 1))
    if augment.zoom > 0:
        layers.append(keras.layers.RandomZoom(augment.zoom, fill_mode="reflect", seed=seed + 2))
    if keras.backend.backend() == "jax":
        # Keras marks rotation and zoom as not XLA-compatible for TensorFlow's image kernel;
        # JAX's (map_coordinates) compiles, and a model holding them must compile under jax.
        for layer in layers:
            layer.supports_jit = True
    return keras.Sequential(layers, name="augment") if layers else None
