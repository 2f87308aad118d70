"""`python -m study export`: every trial of a study, with params, states, values and attrs, as CSV or JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from study.store.record import accuracy
from study.store.storage import StorageLocation, load_study


def trial_records(trials) -> list[dict[str, Any]]:
    """One flat record per trial: number, state, value, times, params_*, user_attrs_* (JSON for lists)."""
    records = []
    for trial in trials:
        record: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": accuracy(trial),
            **({f"value_{i}": v for i, v in enumerate(trial.values)} if trial.values and len(trial.values) > 1 else {}),
            "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        }
        record.update({f"params_{k}": v for k, v in trial.params.items()})
        for key, value in trial.user_attrs.items():
            record[f"user_attrs_{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
        records.append(record)
    return records


def export_study(location: StorageLocation, study_name: str, fmt: str) -> str:
    """The study's trials as CSV text or as a JSON array."""
    import pandas as pd

    records = trial_records(load_study(location, study_name).get_trials(deepcopy=False))
    if fmt == "json":
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
        return json.dumps(clean, ensure_ascii=False, indent=1)
    return pd.DataFrame.from_records(records).to_csv(index=False)
