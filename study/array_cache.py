"""Decoded images on disk: each split written once as .npy files beside the storage, then memory-mapped.

A trial worker process is recycled every few trials; it must not decode the image folder
again, and several workers must not each hold a private copy of the pixels. The run decodes
once, writes the splits into `image-cache/<key>/` (the key covers the data fingerprint, the
split and the image size) and every process memory-maps them: the pages are shared and read
from the operating system's file cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from study.config import SplitConfig
from study.data import SPLITS, DataSplits

IMAGE_CACHE_DIR_NAME = "image-cache"


def image_cache_key(data: DataSplits, split: SplitConfig, image_size: int) -> tuple[str, dict]:
    """A short key and the full record of what the decoded arrays depend on."""
    record = {"data_fingerprint": data.fingerprint, "split": asdict(split), "split_seed": data.seed,
              "image_size": image_size, "split_counts": data.counts()}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16], record


def write_image_cache(data: DataSplits, split: SplitConfig, image_size: int, cache_root: Path) -> Path:
    """Write the splits of `data` under `cache_root` unless they are there already; returns the folder.

    The folder appears atomically (written under a temporary name, then renamed), so a
    reader never sees half of it and two runs writing at once both end with one copy.
    """
    key, record = image_cache_key(data, split, image_size)
    folder = cache_root / key
    if (folder / "meta.json").is_file():
        return folder
    partial = cache_root / f".{key}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in SPLITS:
        np.save(partial / f"{name}_x.npy", np.ascontiguousarray(data.x[name]))
        np.save(partial / f"{name}_y.npy", data.y[name])
    (partial / "meta.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    try:
        os.replace(partial, folder)
    except OSError:  # another run finished the same folder first; use theirs
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def read_image_cache(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(x, y) per split from a cache folder; x memory-mapped read-only, y (small) in memory."""
    x = {name: np.load(folder / f"{name}_x.npy", mmap_mode="r") for name in SPLITS}
    y = {name: np.load(folder / f"{name}_y.npy") for name in SPLITS}
    return x, y


def memory_mapped(data: DataSplits, folder: Path) -> DataSplits:
    """`data` with its pixel arrays replaced by memory maps of the cache folder (frees the copies)."""
    x, y = read_image_cache(folder)
    return replace(data, x=x, y=y)
