"""The "still improving" rule on given curves."""

from __future__ import annotations

import pytest

from study.stats.budget import still_improving


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


@pytest.mark.parametrize("curve, patience, stops_after", [
    ([0.1, 0.3, 0.5, 0.4, 0.45, 0.5, 0.49, 0.6], 3, 6),   # best at 3; 4, 5, 6 no better (a tie is not better)
    ([0.1, 0.3, 0.5, 0.4, 0.6, 0.5, 0.55, 0.58], 3, 8),   # the new best at 5 restarts the count: stops at 8
    ([0.1, 0.2, 0.3, 0.4], 2, None),                      # always improving: runs every epoch
    ([0.5, 0.4, 0.3], None, None),                        # no patience: never stops early
])
def test_patience_stops_at_the_right_epoch_on_a_scripted_curve(curve, patience, stops_after):
    """The training callback's decision, fed one scripted epoch at a time."""
    from types import SimpleNamespace

    from study.trial.fit import EpochLog, make_epoch_callback

    callback = make_epoch_callback(EpochLog(), None, patience=patience)
    callback.set_model(SimpleNamespace(stop_training=False))
    stopped = None
    for epoch, value in enumerate(curve):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": value})
        if callback.model.stop_training:
            stopped = epoch + 1
            break
    assert stopped == stops_after
