"""A held-out image folder for `confirm --holdout`: checked, decoded once, kept as arrays for workers.

The folder must hold classes of the study (a subset is fine) and readable images, none of
which is a byte-for-byte copy of an image in the study's own data folder: a copy was seen
in training, validation or selection, and would flatter every configuration alike.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study.data.images import decode_folder, scan_folder
from study.data.labels import label_map
from study.errors import DataError
from study.store.record import HOLDOUT_CACHE_DIR_NAME


@dataclass(frozen=True)
class Holdout:
    folder: Path  # the user's folder
    arrays_dir: Path  # x.npy (uint8 images at the study's size) and y.npy (study class indices)
    fingerprint: str
    n_images: int
    class_counts: dict[str, int]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_copies(holdout_files: list[Path], data_root: Path) -> list[tuple[Path, Path]]:
    """Every (held-out file, study file) pair with identical bytes (sizes compared first)."""
    if not data_root.is_dir():
        return []
    by_size: dict[int, list[Path]] = {}
    for path in (item.path for item in scan_folder(data_root)[1]):  # the images the study itself read
        by_size.setdefault(path.stat().st_size, []).append(path)
    digests: dict[Path, str] = {}
    copies = []
    for path in holdout_files:
        candidates = by_size.get(path.stat().st_size, [])
        if not candidates:
            continue
        digest = file_digest(path)
        for candidate in candidates:
            if candidate not in digests:
                digests[candidate] = file_digest(candidate)
            if digests[candidate] == digest:
                copies.append((path, candidate))
                break
    return copies


def prepare_holdout(folder: Path, class_names: list[str], image_size: int, data_root: Path,
                    cache_root: Path) -> Holdout:
    """Check and decode `folder`; DataError (one line) for a folder that cannot serve."""
    if not folder.is_dir():
        raise DataError(f"--holdout folder '{folder}' does not exist (expected one sub-folder of images per class)")
    if folder.resolve() == data_root.resolve():
        raise DataError(f"--holdout '{folder}' is the study's own data folder (expected images the study never saw)")
    decoded = decode_folder(folder, image_size)
    if len(decoded.labels) == 0:
        raise DataError(f"--holdout folder '{folder}' has no readable images")
    true = label_map(class_names, decoded.class_names, folder)[decoded.labels]
    copies = find_copies(decoded.files, data_root)
    if copies:
        more = f" (and {len(copies) - 1} more)" if len(copies) > 1 else ""
        raise DataError(f"--holdout: '{copies[0][0]}' is a copy of '{copies[0][1]}' in the study's data{more}; a "
                        "held-out folder must hold images the study never trained, validated or selected on")
    fingerprint = hashlib.sha256(f"{decoded.fingerprint()}/{image_size}/{','.join(class_names)}".encode()).hexdigest()[:16]
    arrays_dir = cache_root / HOLDOUT_CACHE_DIR_NAME / fingerprint
    if not (arrays_dir / "y.npy").is_file():
        partial = arrays_dir.with_name(f".{fingerprint}.{os.getpid()}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        np.save(partial / "x.npy", decoded.images)
        np.save(partial / "y.npy", true.astype(np.int32))
        (partial / "meta.json").write_text(json.dumps({"folder": str(folder), "images": int(len(true))}),
                                           encoding="utf-8")
        try:
            os.replace(partial, arrays_dir)
        except OSError:  # another process wrote it first
            pass
    counts = {name: int((true == class_names.index(name)).sum()) for name in decoded.class_names}
    return Holdout(folder, arrays_dir, fingerprint, int(len(true)), counts)
