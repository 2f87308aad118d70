"""Paired comparison of two models on the same held-out images: bootstrap interval and McNemar.

Pure functions over per-image correctness (no TensorFlow). Each configuration was retrained
with several seeds; its correctness on image i is the share of its runs that got i right.
The accuracy difference is the mean over images of (winner's share - reference's share),
which equals the difference of their mean held-out accuracies; its 95% interval comes from
resampling images (the unit that varies from one photo collection to the next). McNemar's
exact test counts the images that only one of the two gets right by majority of its runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedComparison:
    n_images: int
    difference: float  # winner accuracy - reference accuracy, as a fraction
    ci_low: float
    ci_high: float
    only_winner_right: int  # McNemar's discordant counts (majority of runs)
    only_reference_right: int
    p_value: float  # McNemar's exact two-sided test

    @property
    def verdict(self) -> str:
        """"holds" (interval above 0), "reversed" (below 0) or "not established"."""
        if self.ci_low > 0:
            return "holds"
        if self.ci_high < 0:
            return "reversed"
        return "not established"


def correctness_share(runs: Sequence[Sequence[int]]) -> np.ndarray:
    """Per image, the share of `runs` (each a 0/1 list over the same images) that got it right."""
    matrix = np.asarray(runs, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError("expected one or more runs over the same images")
    return matrix.mean(axis=0)


def bootstrap_difference(winner: np.ndarray, reference: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = 0) -> tuple[float, float, float]:
    """(mean difference, 2.5th and 97.5th percentile over image resamples)."""
    diff = np.asarray(winner, dtype=float) - np.asarray(reference, dtype=float)
    if diff.size == 0:
        raise ValueError("no images to compare")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def mcnemar_exact(only_first_right: int, only_second_right: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of the discordant pairs at 1/2."""
    from scipy.stats import binomtest

    discordant = only_first_right + only_second_right
    if discordant == 0:
        return 1.0
    return float(binomtest(only_first_right, discordant, 0.5).pvalue)


def compare_paired(winner_runs: Sequence[Sequence[int]], reference_runs: Sequence[Sequence[int]]) -> PairedComparison:
    """Both configurations' runs on the same held-out images, compared image by image."""
    winner, reference = correctness_share(winner_runs), correctness_share(reference_runs)
    if winner.shape != reference.shape:
        raise ValueError("the two configurations were evaluated on different images")
    difference, low, high = bootstrap_difference(winner, reference)
    winner_right, reference_right = winner > 0.5, reference > 0.5
    b = int((winner_right & ~reference_right).sum())
    c = int((~winner_right & reference_right).sum())
    return PairedComparison(int(winner.size), difference, low, high, b, c, mcnemar_exact(b, c))
