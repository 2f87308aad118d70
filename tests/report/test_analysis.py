"""Report extraction on hand-made studies (trials made with optuna.trial.create_trial)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from study.report.analysis import (
    best_of_seven,
    best_so_far,
    best_within,
    claim_effects,
    confidence_interval,
    confirmed_configs,
    edge_warnings,
    lead_over,
    pruning_savings,
    runs_of,
    seven_rows,
    state_counts,
)
from study.space.spec import load_space
from study.store.record import TrialKey, top_trials

DISTRIBUTIONS = {
    "head_depth": IntDistribution(1, 5),
    "dense_units": IntDistribution(64, 4096, log=True),
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
}


def trial(value=None, state=TrialState.COMPLETE, depth=3, units=1024, lr=2e-5, **attrs):
    return create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None,
        params={"head_depth": depth, "dense_units": units, "learning_rate": lr},
        distributions=DISTRIBUTIONS, user_attrs={"dropout": 0.5, **attrs},
    )


def numbered(trials):
    """Trials as a study stores them, numbered in order."""
    study = optuna.create_study(direction="maximize")
    for t in trials:
        study.add_trial(t)
    return study.trials


def test_state_counts():
    trials = numbered([trial(0.5), trial(0.6), trial(state=TrialState.PRUNED), trial(state=TrialState.FAIL)])
    assert state_counts(trials) == (2, 1, 1, 0)


def test_seven_table_pairs_published_and_measured_numbers():
    trials = numbered([
        trial(0.41, seed_name="mn_resultset2", units=2048, published_accuracy=0.952,
              published_time_ms=25686338, test_accuracy=0.40, train_seconds=120.0),
        trial(0.30, seed_name="mn_resultset1", published_accuracy=0.9488, published_time_ms=26376814,
              test_accuracy=0.31, train_seconds=80.0),
        trial(0.70, units=300),  # a searched trial: not one of the seven
        trial(state=TrialState.FAIL, seed_name="mn_resultset3", units=4096, published_accuracy=0.9523),
    ])
    rows = seven_rows(trials)
    assert [r.name for r in rows] == ["mn_resultset1", "mn_resultset2", "mn_resultset3"]
    first = rows[0]
    assert (first.head_depth, first.dense_units, first.learning_rate) == (3, 1024, 2e-5)
    assert (first.published_accuracy, first.published_time_ms) == (0.9488, 26376814)
    assert (first.val_accuracy, first.test_accuracy, first.train_seconds) == (0.30, 0.31, 80.0)
    assert rows[2].state == "FAIL" and rows[2].val_accuracy is None
    assert best_of_seven(rows).name == "mn_resultset2"


def test_a_seed_still_waiting_in_the_queue_shows_its_parameters():
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"head_depth": 4, "dense_units": 1024, "learning_rate": 2e-5},
                        user_attrs={TrialKey.SEED_NAME: "mn_resultset5", "published_accuracy": 0.9365})
    (row,) = seven_rows(study.trials)
    assert (row.name, row.state, row.head_depth, row.dense_units) == ("mn_resultset5", "WAITING", 4, 1024)
    assert row.val_accuracy is None


def test_time_saved_by_pruning_uses_each_trials_own_epoch_time():
    trials = numbered([
        trial(state=TrialState.PRUNED, epochs_run=2, epoch_seconds=[10.0, 12.0]),  # 6 x 11 s
        trial(state=TrialState.PRUNED, epochs_run=5, epoch_seconds=[4.0] * 5),  # 3 x 4 s
        trial(0.5, epochs_run=8, epoch_seconds=[9.0] * 8),
    ])
    savings = pruning_savings(trials, max_epochs=8)
    assert savings == (2, 9, pytest.approx(6 * 11.0 + 3 * 4.0))


def test_top_trials_leave_out_the_seven_unless_asked():
    trials = numbered([trial(0.9, seed_name="mn_resultset7"), trial(0.8), trial(0.85), trial(0.7),
                       trial(state=TrialState.PRUNED)])
    assert [t.value for t in top_trials(trials, 2)] == [0.85, 0.8]
    assert [t.value for t in top_trials(trials, 1, include_seeds=True)] == [0.9]


def test_edge_warnings_on_log_and_linear_ranges():
    specs = load_space("default").parameters
    assert edge_warnings({"head_depth": 3, "dense_units": 512, "learning_rate": 1e-4, "dropout": 0.3}, specs) == []
    found = edge_warnings({"head_depth": 5, "dense_units": 4000, "learning_rate": 1.2e-5, "dropout": 0.3}, specs)
    assert [(w.parameter, w.edge) for w in found] == [
        ("head_depth", "upper"), ("dense_units", "upper"), ("learning_rate", "lower")]


def synthetic_trials(slopes, noise, n=40, seed=0):
    """Trials whose accuracy follows the given slopes (per doubling, per layer, per x10) plus noise."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        depth = int(rng.integers(1, 6))
        units = int(2 ** rng.uniform(6, 12))
        lr = float(10 ** rng.uniform(-5, -3))
        value = (0.5 + slopes[0] * math.log2(units) + slopes[1] * depth + slopes[2] * math.log10(lr)
                 + rng.normal(0, noise))
        trials.append(trial(value, depth=depth, units=units, lr=lr))
    return numbered(trials)


VARIED = ["head_depth", "dense_units", "learning_rate"]


def test_verdicts_supported():
    effects = claim_effects(synthetic_trials((0.02, -0.03, 0.05), noise=0.005), VARIED)
    assert [e.verdict for e in effects] == ["supported"] * 3
    units = effects[0]
    assert units.parameter == "dense_units" and units.unit == "per doubling"
    assert units.ci_low < 0.02 < units.ci_high


def test_verdicts_contradicted():
    effects = claim_effects(synthetic_trials((-0.02, 0.03, -0.05), noise=0.005), VARIED)
    assert [e.verdict for e in effects] == ["contradicted"] * 3


def test_verdicts_inconclusive_with_noise_and_with_too_few_trials():
    noisy = claim_effects(synthetic_trials((0.0, 0.0, 0.0), noise=0.05, n=12, seed=3), VARIED)
    assert [e.verdict for e in noisy] == ["inconclusive"] * 3
    assert all(e.ci_low < 0 < e.ci_high for e in noisy)
    few = claim_effects(synthetic_trials((0.02, -0.03, 0.05), noise=0.0, n=3), VARIED)
    assert [e.verdict for e in few] == ["inconclusive"] * 3 and "too few" in few[0].reason


def test_a_hyperparameter_the_study_did_not_vary_is_inconclusive():
    trials = numbered([trial(0.5 + 0.01 * i, units=64 * (i + 1)) for i in range(6)])
    effects = {e.parameter: e for e in claim_effects(trials, VARIED)}
    assert effects["head_depth"].reason == "not varied in this study"
    assert effects["dense_units"].verdict == "supported"


def test_confidence_interval_matches_the_t_formula():
    interval = confidence_interval([0.50, 0.52, 0.54])
    # mean 0.52, sd 0.02, t(0.975, 2) = 4.3027
    assert interval.mean == pytest.approx(0.52)
    assert interval.high - interval.mean == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert confidence_interval([0.5]).low == -math.inf


def confirm_run(value, of, seed_name=None):
    attrs = {TrialKey.CONFIRM_OF: of, "test_accuracy": value - 0.01}
    if seed_name:
        attrs[TrialKey.SEED_NAME] = seed_name
    return trial(value, **attrs)


def test_confirmation_groups_runs_and_judges_the_lead():
    search = numbered([trial(0.6, seed_name="mn_resultset7"), trial(0.8)])
    confirm = numbered([confirm_run(v, 0, "mn_resultset7") for v in (0.60, 0.61, 0.59)]
                       + [confirm_run(v, 1) for v in (0.80, 0.82, 0.78)])
    configs = confirmed_configs(search, confirm)
    assert [c.label for c in configs] == ["trial 1", "mn_resultset7"]
    assert configs[0].interval.mean == pytest.approx(0.80) and configs[0].search_value == 0.8
    lead = lead_over(configs[0], configs[1], runs_of(confirm, 1), runs_of(confirm, 0))
    assert lead.difference == pytest.approx(0.20) and lead.beyond_noise
    close = lead_over(configs[0], configs[1], [0.60, 0.70, 0.50], [0.59, 0.69, 0.49])
    assert not close.beyond_noise and close.ci_low < 0 < close.ci_high


def timed(value, start_s, end_s, state=TrialState.COMPLETE):
    from datetime import datetime, timedelta

    frozen = trial(value, state=state)
    origin = datetime(2026, 1, 1)
    frozen.datetime_start, frozen.datetime_complete = origin + timedelta(seconds=start_s), origin + timedelta(seconds=end_s)
    return frozen


def test_best_so_far_follows_completion_order_and_wall_time():
    curve = best_so_far([timed(0.5, 0, 10), timed(None, 10, 15, TrialState.PRUNED), timed(0.7, 15, 40),
                         timed(0.6, 40, 50)])
    assert curve.trials_run == [1, 2, 3, 4]
    assert curve.elapsed_seconds == [10, 15, 40, 50]
    assert curve.best == [0.5, 0.5, 0.7, 0.7]
    assert best_within(curve, 39) == 0.5 and best_within(curve, 5) is None


def test_engine_rows_compare_at_the_shorter_wall_time():
    from study.report.compare import comparison_rows

    fast = best_so_far([timed(0.4, 0, 10), timed(0.8, 10, 100)])
    slow = best_so_far([timed(0.6, 0, 50), timed(0.9, 50, 300)])
    rows = comparison_rows({"a": fast, "b": slow})
    assert rows == [("a", 2, 100.0, 0.8, 0.8), ("b", 2, 300.0, 0.9, 0.6)]


def test_winning_settings_rank_by_importance_then_name_and_compare_the_best_quarter_with_the_rest():
    from study.report.analysis import winning_settings

    trials = [create_trial(value=value, params={"lr_schedule": schedule, "head_depth": depth},
                           distributions={"lr_schedule": CategoricalDistribution(["constant", "cosine"]),
                                          "head_depth": IntDistribution(1, 5)})
              for value, schedule, depth in [(0.9, "cosine", 1), (0.8, "cosine", 2), (0.5, "constant", 3),
                                             (0.4, "constant", 4), (0.3, "cosine", 5), (0.2, "constant", 5),
                                             (0.1, "constant", 5), (0.0, "constant", 5)]]
    for number, trial in enumerate(trials):
        trial.number = number
    settings = winning_settings(trials, {"lr_schedule": 0.4, "head_depth": 0.4, "dropout": 0.2},
                                lambda t: t.values[0], limit=2)
    assert [s.name for s in settings] == ["head_depth", "lr_schedule"]  # a tie: in name order
    assert settings[1].best_count == 2 and settings[1].best_text == "cosine in 2 of 2"
    assert settings[1].rest_text == "constant in 5 of 6"
    assert settings[0].best_text == "median 1.5" and settings[0].rest_text == "median 5"
    assert winning_settings(trials[:3], {"head_depth": 1.0}, lambda t: t.values[0]) == []  # too few trials
