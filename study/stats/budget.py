"""Was a trial still learning when its epoch budget ran out? A pure rule over its validation curve.

A comparison between two configurations is about the configurations only if both had
stopped improving; a curve still climbing at its last epoch says the budget, not the
configuration, limited it (the original trained for hours, a study often for minutes).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from study.store.record import TrialKey


def still_improving(val_accuracy: Sequence[float]) -> bool:
    """True when the best epoch is the last and the last third of the curve rises.

    "Rises": the least-squares slope over the last ceil(n/3) epochs (at least two) is
    positive. A curve of fewer than two epochs says nothing and is False.
    """
    curve = [float(v) for v in val_accuracy if v is not None and not math.isnan(float(v))]
    if len(curve) < 2 or len(curve) != len(val_accuracy):
        return False
    if curve[-1] < max(curve):
        return False
    tail = curve[-max(2, math.ceil(len(curve) / 3)):]
    slope = np.polyfit(np.arange(len(tail), dtype=float), np.asarray(tail), 1)[0]
    return bool(slope > 0)


def trial_still_improving(trial) -> bool:
    """`still_improving` of a completed trial's recorded validation curve (False otherwise)."""
    from optuna.trial import TrialState

    history = trial.user_attrs.get(TrialKey.HISTORY) or {}
    return trial.state == TrialState.COMPLETE and still_improving(history.get("val_accuracy", []))
