"""The paired held-out comparison against hand-computed cases."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from study.stats.paired import bootstrap_difference, compare_paired, correctness_share, mcnemar_exact


def test_identical_predictions_differ_by_zero_with_p_one():
    runs = [[1, 0, 1, 1, 0, 1]] * 3
    result = compare_paired(runs, runs)
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0 and result.verdict == "not established"


def test_one_sided_disagreements_give_the_exact_binomial_p():
    # 5 images only the winner gets right, none the other way: p = 2 * (1/2)^5
    assert mcnemar_exact(5, 0) == pytest.approx(2 * 0.5 ** 5)
    # 7 vs 2: p = 2 * P(X <= 2), X ~ Binomial(9, 1/2)
    assert mcnemar_exact(7, 2) == pytest.approx(2 * sum(comb(9, k) for k in range(3)) / 2 ** 9)
    assert mcnemar_exact(0, 0) == 1.0


def test_a_consistent_lead_holds_and_its_interval_covers_the_difference():
    rng = np.random.default_rng(1)
    reference = (rng.random(400) < 0.6).astype(int)
    winner = reference.copy()
    flip = np.flatnonzero(reference == 0)[:60]  # 60 more right, none fewer: +15 points
    winner[flip] = 1
    result = compare_paired([winner], [reference])
    assert result.difference == pytest.approx(0.15)
    assert 0 < result.ci_low < 0.15 < result.ci_high
    assert (result.only_winner_right, result.only_reference_right) == (60, 0)
    assert result.verdict == "holds" and result.p_value < 1e-10
    assert compare_paired([reference], [winner]).verdict == "reversed"


def test_runs_are_combined_per_image_as_the_share_right():
    assert correctness_share([[1, 0, 1], [1, 1, 0]]).tolist() == [1.0, 0.5, 0.5]
    # a 0.5 share is not a majority: neither side counts as right for McNemar
    result = compare_paired([[1, 0], [1, 1]], [[0, 0], [0, 0]])
    assert (result.only_winner_right, result.only_reference_right) == (1, 0)
    assert result.difference == pytest.approx(0.75)


def test_the_bootstrap_is_seeded_and_rejects_no_images():
    a, b = np.array([1, 0, 1, 1, 0]), np.array([0, 0, 1, 0, 1])
    assert bootstrap_difference(a, b) == bootstrap_difference(a, b)
    with pytest.raises(ValueError):
        bootstrap_difference(np.array([]), np.array([]))
