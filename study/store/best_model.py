"""The study's best model on disk: `<study>.best.keras` and its metadata, replaced atomically.

Written by whichever process trained the model (a trial worker, or the run itself with
`--isolation none`). Workers sharing a folder save under a lock, and only over a worse model:
another worker may have saved a better one since this trial was found to be the best.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path


def save_best_model(model, model_path: Path, meta_path: Path, meta: dict, predictions=None) -> bool:
    """Write `model` and `meta` (which holds `study_name` and `validation_accuracy`) unless a
    model of the same study with at least that accuracy is already saved; True when written.

    `predictions` (a `study.store.predictions.Predictions` on the test split) goes beside them, for the
    report's "Where the best model fails"."""
    from study.store.predictions import save_predictions
    from study.store.record import predictions_path

    lock_path = model_path.with_name(model_path.name + ".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if meta_path.is_file():
            saved = json.loads(meta_path.read_text(encoding="utf-8"))
            if (saved.get("study_name") == meta["study_name"]
                    and saved.get("validation_accuracy", -1) >= meta["validation_accuracy"]):
                return False
        unique = f"{os.getpid()}-{meta.get('trial_number', 0)}"
        tmp_model = model_path.with_name(f"{model_path.stem}.{unique}.tmp.keras")
        model.save(tmp_model)
        os.replace(tmp_model, model_path)
        target = predictions_path(model_path)
        if predictions is not None:
            tmp_predictions = target.with_name(f"{target.stem}.{unique}.tmp.npz")
            save_predictions(predictions, tmp_predictions)
            os.replace(tmp_predictions, target)
        else:  # never leave another model's predictions beside this one
            target.unlink(missing_ok=True)
        tmp_meta = meta_path.with_name(f"{meta_path.name}.{unique}.tmp")
        tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(tmp_meta, meta_path)
    return True
