"""The front of accuracy against cost, its halvings and the cheapest model near the best, from given points."""

import optuna
from optuna.trial import TrialState, create_trial

from study.front import (CostPoint, cheapest_within, cost_points, front_indices, halvings, pareto_front)


def point(number, acc, macs, size=None, params=None):
    return CostPoint(number, f"trial {number}", acc, 0, params or macs, params or macs, macs,
                     size if size is not None else macs, 1.0, {})


def test_front_keeps_only_undominated_pairs_by_ascending_cost():
    pairs = [(0.90, 100), (0.80, 10), (0.85, 50), (0.84, 60), (0.90, 120), (0.70, 10), (0.95, 400)]
    # (0.84, 60) is beaten by (0.85, 50); (0.90, 120) by (0.90, 100); (0.70, 10) by (0.80, 10)
    assert front_indices(pairs) == [1, 2, 0, 6]


def test_front_of_duplicates_keeps_the_first_and_of_nothing_is_empty():
    assert front_indices([(0.5, 1), (0.5, 1)]) == [0]
    assert front_indices([]) == []


def test_front_depends_on_the_cost():
    points = [point(0, 0.9, macs=100, size=10), point(1, 0.8, macs=10, size=100)]
    assert [p.number for p in pareto_front(points, "macs")] == [1, 0]
    assert [p.number for p in pareto_front(points, "model_bytes")] == [0]


def test_halvings_give_the_best_model_at_each_fraction_of_the_top_cost():
    front = [point(0, 0.70, 10), point(1, 0.85, 30), point(2, 0.89, 60), point(3, 0.90, 128)]
    steps = halvings(front, "macs")
    assert [(h.fraction, h.point.number) for h in steps] == [(0.5, 2), (0.25, 1), (0.125, 0)]  # none at <= 8
    assert abs(steps[0].lost - 0.01) < 1e-9 and abs(steps[1].lost - 0.05) < 1e-9
    assert halvings([point(0, 0.9, 10)], "macs") == []


def test_cheapest_within_a_margin_of_the_best():
    points = [point(0, 0.90, 1000), point(1, 0.895, 80), point(2, 0.889, 5), point(3, 0.7, 1)]
    assert cheapest_within(points, 0.01, "params_total").number == 1
    assert cheapest_within(points, 0.02, "params_total").number == 2
    assert cheapest_within([], 0.01, "macs") is None


def test_cost_points_take_completed_trials_with_every_cost():
    costs = {"params_base": 1, "params_head": 2, "params_total": 3, "macs": 4, "model_bytes": 5, "latency_ms": 0.5}
    dist = {"head_depth": optuna.distributions.IntDistribution(0, 3)}
    trials = [
        create_trial(values=[0.8, 3.0], params={"head_depth": 1}, distributions=dist,
                     user_attrs={**costs, "seed_name": "mn_resultset1", "pooling": "flatten"}),
        create_trial(values=[0.9, 3.0], params={"head_depth": 2}, distributions=dist, user_attrs={"macs": 4}),
        create_trial(state=TrialState.PRUNED, params={"head_depth": 2}, distributions=dist, user_attrs=costs),
    ]
    points = cost_points(trials)
    assert len(points) == 1
    assert points[0].label == "mn_resultset1" and points[0].accuracy == 0.8 and points[0].macs == 4
    assert points[0].params == {"pooling": "flatten", "head_depth": 1}
