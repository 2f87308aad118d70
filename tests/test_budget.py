"""The "still improving" rule on given curves."""

from __future__ import annotations

import pytest

from study.budget import still_improving


@pytest.mark.parametrize("curve, expected", [
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], True),            # climbing to the end
    ([0.1, 0.3, 0.5, 0.5, 0.55, 0.6], True),           # slower, still best at the end
    ([0.1, 0.5, 0.6, 0.6, 0.6, 0.6], False),           # the last third is flat: it stopped
    ([0.1, 0.5, 0.7, 0.6, 0.65, 0.68], False),         # the best epoch is not the last
    ([0.1, 0.6, 0.62, 0.5, 0.55, 0.62], True),         # ties the best at the last, last third rising
    ([0.4], False),                                    # one epoch says nothing
    ([], False),
    ([0.1, float("nan"), 0.3], False),                 # a curve with a hole is not judged
])
def test_still_improving(curve, expected):
    assert still_improving(curve) is expected
