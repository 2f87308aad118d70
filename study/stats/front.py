"""The front of accuracy against cost: pure functions over trials' recorded numbers (no TensorFlow).

A trial is on the front of a cost when no other completed trial is at least as accurate and
at most as costly, and better in one of the two. `halvings` turns a front into what each
halving of the cost gives up; `cheapest_within` finds the cheapest model near the best.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from optuna.trial import FrozenTrial, TrialState

from study.space.spec import PARAMETER_KINDS
from study.store.record import COST_KEYS, CostKey, TrialKey, accuracy


class CostPoint(NamedTuple):
    number: int
    label: str  # a seed's name or "trial N"
    accuracy: float  # validation accuracy
    params_base: int
    params_head: int
    params_total: int
    macs: int
    model_bytes: int
    latency_ms: float
    params: dict
    seed: bool = False  # one of the space's seed configurations (the seven)


class Halving(NamedTuple):
    fraction: float  # of the most accurate front model's cost: 1/2, 1/4, ...
    point: CostPoint  # the most accurate front model within that cost
    lost: float  # accuracy given up against the front's most accurate model (fraction)


def cost_points(trials: Sequence[FrozenTrial]) -> list[CostPoint]:
    """The completed trials that recorded every cost, in trial order."""
    points = []
    for trial in trials:
        attrs = trial.user_attrs
        if trial.state != TrialState.COMPLETE or not all(key in attrs for key in COST_KEYS):
            continue
        params = {**{k: attrs[k] for k in PARAMETER_KINDS if k in attrs}, **trial.params}
        points.append(CostPoint(trial.number, attrs.get(TrialKey.SEED_NAME, f"trial {trial.number}"), accuracy(trial),
                                *(attrs[k] for k in COST_KEYS), params, TrialKey.SEED_NAME in attrs))
    return points


def front_indices(pairs: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (accuracy, cost) pairs nobody dominates, by ascending cost.

    Of exact duplicates only the first is kept.
    """
    order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1], -pairs[i][0], i))
    front, best = [], float("-inf")
    for i in order:
        if pairs[i][0] > best:
            front.append(i)
            best = pairs[i][0]
    return front


def pareto_front(points: Sequence[CostPoint], cost: str) -> list[CostPoint]:
    """The points on the front of validation accuracy against `cost` (a COST_KEYS name), cheapest first."""
    return [points[i] for i in front_indices([(p.accuracy, getattr(p, cost)) for p in points])]


FRONT_COSTS = (CostKey.MACS, CostKey.MODEL_BYTES)  # the report's two fronts


def front_numbers(points: Sequence[CostPoint]) -> set[int]:
    """Numbers of the trials on the front of accuracy against multiply-adds or against size."""
    return {p.number for cost in FRONT_COSTS for p in pareto_front(points, cost)}


def halvings(front: Sequence[CostPoint], cost: str) -> list[Halving]:
    """For each halving of the most accurate front model's cost, the best front model that fits."""
    if not front:
        return []
    top = max(front, key=lambda p: p.accuracy)
    result, fraction = [], 0.5
    while True:
        fitting = [p for p in front if getattr(p, cost) <= fraction * getattr(top, cost)]
        if not fitting:
            return result
        best = max(fitting, key=lambda p: p.accuracy)
        result.append(Halving(fraction, best, top.accuracy - best.accuracy))
        fraction /= 2


def cheapest_within(points: Sequence[CostPoint], margin: float, cost: str) -> CostPoint | None:
    """The cheapest point (by `cost`) whose accuracy is within `margin` of the best point's."""
    if not points:
        return None
    best = max(p.accuracy for p in points)
    near = [p for p in points if p.accuracy >= best - margin - 1e-12]
    return min(near, key=lambda p: (getattr(p, cost), -p.accuracy, p.number))
