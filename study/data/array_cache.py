"""Decoded images on disk: each split written once as .npy files beside the storage, then memory-mapped.

`write_split_arrays` / `read_split_arrays` are the on-disk form shared with the feature
cache (`study.trial.features`): one folder per key, `<split>_x.npy` and `<split>_y.npy`, published
atomically. A trial worker process is recycled every few trials; it must not decode the image folder
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
from typing import Callable

import numpy as np

from study.config import SplitConfig
from study.data.images import SPLITS, DataSplits


def image_cache_key(data: DataSplits, split: SplitConfig, image_size: int) -> tuple[str, dict]:
    """A short key and the full record of what the decoded arrays depend on."""
    record = {"data_fingerprint": data.fingerprint, "split": asdict(split), "split_seed": data.seed,
              "image_size": image_size, "split_counts": data.counts()}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16], record


def write_split_arrays(cache_root: Path, key: str, record: dict,
                       split_arrays: Callable[[str], tuple[np.ndarray, np.ndarray]]) -> tuple[Path, bool]:
    """Write `split_arrays(split)` -> (x, y) for every split into `cache_root/key/` unless it is
    there already; returns (folder, whether this call wrote it).

    The folder appears atomically (written under a temporary name, then renamed), so a
    reader never sees half of it and two processes writing at once both end with one copy.
    Splits are produced one at a time, so only one split's arrays are held at once.
    """
    folder = cache_root / key
    if (folder / "meta.json").is_file():
        return folder, False
    partial = cache_root / f".{key}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in SPLITS:
        x, y = split_arrays(name)
        np.save(partial / f"{name}_x.npy", np.ascontiguousarray(x))
        np.save(partial / f"{name}_y.npy", y)
    (partial / "meta.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    try:
        os.replace(partial, folder)
    except OSError:  # another process finished the same folder first; use theirs
        shutil.rmtree(partial, ignore_errors=True)
    return folder, True


def read_split_arrays(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(x, y) per split from a cache folder; x memory-mapped read-only, y (small) in memory."""
    x = {name: np.load(folder / f"{name}_x.npy", mmap_mode="r") for name in SPLITS}
    y = {name: np.load(folder / f"{name}_y.npy") for name in SPLITS}
    return x, y


def write_image_cache(data: DataSplits, split: SplitConfig, image_size: int, cache_root: Path) -> Path:
    """Write the decoded splits of `data` under `cache_root` unless they are there already; the folder."""
    key, record = image_cache_key(data, split, image_size)
    folder, _ = write_split_arrays(cache_root, key, record, lambda name: (data.x[name], data.y[name]))
    return folder


def image_caches_for_sizes(data: DataSplits, split: SplitConfig, sizes, cache_root: Path) -> dict[int, Path]:
    """The image-cache folder of each size in `sizes`, decoding `data`'s folder again for a missing one.

    `data` is the run's splits at its own size; the same files split with the same seed give
    the same splits at any size, so only the pixels differ between these folders.
    """
    from study.data.images import load_splits

    folders = {}
    for size in sorted(set(sizes)):
        key, record = image_cache_key(data, split, size)
        if (cache_root / key / "meta.json").is_file():
            folders[size] = cache_root / key
            continue
        other = load_splits(data.root, size, split, data.seed)
        folders[size] = write_image_cache(other, split, size, cache_root)
        del other
    return folders


def memory_mapped(data: DataSplits, folder: Path) -> DataSplits:
    """`data` with its pixel arrays replaced by memory maps of the cache folder (frees the copies)."""
    x, y = read_split_arrays(folder)
    return replace(data, x=x, y=y)
