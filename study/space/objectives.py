"""What a study optimises: validation accuracy alone, or accuracy against costs (multi-objective).

`--objectives accuracy,macs` (or `params`, `size`, `latency`, several at once) makes the
study multi-objective: Optuna's samplers then look for the Pareto front of high accuracy and
low cost. Optuna prunes single-objective studies only, so such a study trains every trial to
its last epoch. The study's best model is still the trial of highest validation accuracy.
"""

from __future__ import annotations

from typing import NamedTuple

from study.errors import StudyError
from study.store.record import CostKey


class ObjectiveSpec(NamedTuple):
    attr: str  # the trial's user attr that holds the number
    direction: str
    metric: str  # the name Optuna (and the dashboard) shows


OBJECTIVES = {
    "accuracy": ObjectiveSpec("", "maximize", "validation accuracy"),
    "macs": ObjectiveSpec(CostKey.MACS, "minimize", "multiply-adds"),
    "params": ObjectiveSpec(CostKey.PARAMS_TOTAL, "minimize", "parameters"),
    "size": ObjectiveSpec(CostKey.MODEL_BYTES, "minimize", "model bytes"),
    "latency": ObjectiveSpec(CostKey.LATENCY_MS, "minimize", "latency ms"),
}


def parse_objectives(text: str) -> tuple[str, ...]:
    """`accuracy,macs` -> ("accuracy", "macs"); accuracy first, each cost once, else StudyError."""
    names = tuple(part.strip() for part in text.split(","))
    known = ", ".join(OBJECTIVES)
    for name in names:
        if name not in OBJECTIVES:
            raise StudyError(f"--objectives: unknown objective {name!r} (expected accuracy, then any of: "
                             f"{known.replace('accuracy, ', '')})")
    if names[0] != "accuracy":
        raise StudyError(f"--objectives: the first objective is accuracy, got {text!r} (e.g. accuracy,macs)")
    if len(set(names)) != len(names):
        raise StudyError(f"--objectives: an objective is repeated in {text!r}")
    return names


def directions_of(objectives: tuple[str, ...]) -> list[str]:
    return [OBJECTIVES[name].direction for name in objectives]


def objective_values(objectives: tuple[str, ...], val_accuracy: float, attrs: dict) -> list[float]:
    """The values a trial returns to Optuna: accuracy, then each cost from its recorded attrs."""
    return [val_accuracy] + [float(attrs[OBJECTIVES[name].attr]) for name in objectives[1:]]
