"""Pure extraction for the report: trials -> tables and facts, no plotting and no TensorFlow.

Each function takes finished `FrozenTrial`s (or plain numbers) and returns a NamedTuple or a
list of them, in the manner of `optuna/visualization`'s `_get_*_info` helpers, so that every
number of the report is tested on hand-made studies.
"""

from __future__ import annotations

import math
from statistics import mean
from typing import Any, NamedTuple, Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from study.space.spec import ParameterSpec
from study.store.record import TrialKey, accuracy, param_value

EDGE_FRACTION = 0.1  # "near an edge": within the outer 10% of a range (log scale for log ranges)


class StateCounts(NamedTuple):
    complete: int
    pruned: int
    failed: int
    running: int


class SevenRow(NamedTuple):
    name: str
    head_depth: int
    dense_units: int
    learning_rate: float
    published_accuracy: float | None
    published_time_ms: float | None
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float | None
    trial_number: int


class PruningSavings(NamedTuple):
    pruned_trials: int
    epochs_not_run: int
    seconds_saved: float  # epochs not run x each pruned trial's own measured seconds per epoch


class EdgeWarning(NamedTuple):
    parameter: str
    value: float
    edge: str  # "lower" or "upper"
    bound: float


class Effect(NamedTuple):
    """A regression slope of accuracy on one hyperparameter, other varied ones held fixed."""

    parameter: str
    unit: str  # what one step of the slope means, e.g. "per doubling"
    slope: float | None  # accuracy points (0-1 scale) per unit
    ci_low: float | None
    ci_high: float | None
    n_trials: int
    verdict: str  # "supported", "contradicted" or "inconclusive"
    reason: str


class Interval(NamedTuple):
    mean: float
    low: float
    high: float
    n: int


class ConfirmedConfig(NamedTuple):
    trial_number: int  # the search trial that was repeated
    label: str  # its seed name or "trial N"
    params: dict[str, Any]
    search_value: float | None
    interval: Interval  # over the confirmation runs' validation accuracy
    test_interval: Interval | None
    holdout_interval: Interval | None = None  # over the runs' held-out accuracy (confirm --holdout)


class BestCurve(NamedTuple):
    """Best value so far after each finished trial, against trials run and wall time."""

    trials_run: list[int]
    elapsed_seconds: list[float]  # from the first trial's start to this trial's end
    best: list[float | None]


class Lead(NamedTuple):
    winner: str
    reference: str
    difference: float
    ci_low: float
    ci_high: float
    beyond_noise: bool


# The original project's three conclusions: hyperparameter, transform, direction it claimed.
ORIGINAL_CLAIMS = (
    ("dense_units", "log2", +1, "more dense units -> higher accuracy"),
    ("head_depth", "linear", -1, "more hidden layers -> lower accuracy"),
    ("learning_rate", "log10", +1, "higher learning rate -> higher accuracy"),
)
TRANSFORM_UNITS = {"log2": "per doubling", "log10": "per x10", "linear": "per layer"}


def state_counts(trials: Sequence[FrozenTrial]) -> StateCounts:
    """How many trials completed, were pruned, failed, or are still running."""
    states = [t.state for t in trials]
    return StateCounts(states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED),
                       states.count(TrialState.FAIL), states.count(TrialState.RUNNING))


def seven_rows(trials: Sequence[FrozenTrial]) -> list[SevenRow]:
    """The seed configurations (the original seven) as run in this study, in name order."""
    rows = []
    for trial in trials:
        name = trial.user_attrs.get(TrialKey.SEED_NAME)
        if name is None:
            continue
        done = trial.state == TrialState.COMPLETE
        rows.append(SevenRow(
            name=name,
            head_depth=param_value(trial, "head_depth"),
            dense_units=param_value(trial, "dense_units"),
            learning_rate=param_value(trial, "learning_rate"),
            published_accuracy=trial.user_attrs.get(TrialKey.PUBLISHED_ACCURACY),
            published_time_ms=trial.user_attrs.get(TrialKey.PUBLISHED_TIME_MS),
            state=trial.state.name,
            val_accuracy=accuracy(trial) if done else None,
            test_accuracy=trial.user_attrs.get(TrialKey.TEST_ACCURACY) if done else None,
            train_seconds=trial.user_attrs.get(TrialKey.TRAIN_SECONDS),
            trial_number=trial.number,
        ))
    return sorted(rows, key=lambda r: (r.name, r.trial_number))


def best_of_seven(rows: Sequence[SevenRow]) -> SevenRow | None:
    """The seed configuration with the highest validation accuracy here, if any completed."""
    done = [r for r in rows if r.val_accuracy is not None]
    return max(done, key=lambda r: r.val_accuracy) if done else None


def pruning_savings(trials: Sequence[FrozenTrial], max_epochs: int) -> PruningSavings:
    """Epochs pruning spared, and their cost at each pruned trial's measured seconds per epoch."""
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    epochs_not_run, seconds = 0, 0.0
    for trial in pruned:
        run = trial.user_attrs.get(TrialKey.EPOCHS_RUN, 0)
        per_epoch = trial.user_attrs.get(TrialKey.EPOCH_SECONDS) or []
        missing = max(0, max_epochs - run)
        epochs_not_run += missing
        if per_epoch:
            seconds += missing * mean(per_epoch)
    return PruningSavings(len(pruned), epochs_not_run, seconds)


def edge_warnings(params: dict[str, Any], specs: Sequence[ParameterSpec]) -> list[EdgeWarning]:
    """Ranged hyperparameters whose value sits in the outer EDGE_FRACTION of their range."""
    warnings = []
    for spec in specs:
        if spec.kind not in ("int", "float") or spec.name not in params:
            continue
        value = params[spec.name]
        scale = (lambda v: math.log(v)) if spec.log else (lambda v: v)
        position = (scale(value) - scale(spec.low)) / (scale(spec.high) - scale(spec.low))
        if position <= EDGE_FRACTION:
            warnings.append(EdgeWarning(spec.name, value, "lower", spec.low))
        elif position >= 1 - EDGE_FRACTION:
            warnings.append(EdgeWarning(spec.name, value, "upper", spec.high))
    return warnings


def t_quantile(n_freedom: int, probability: float = 0.975) -> float:
    """Student's t quantile (two-sided 95% by default)."""
    from scipy import stats

    return float(stats.t.ppf(probability, n_freedom))


def transform(values: np.ndarray, how: str) -> np.ndarray:
    return {"log2": np.log2, "log10": np.log10, "linear": lambda v: v}[how](values.astype(float))


def claim_effects(trials: Sequence[FrozenTrial], varied: Sequence[str]) -> list[Effect]:
    """Test the original's three conclusions on this study's completed trials.

    One least-squares fit of validation accuracy on every varied hyperparameter (log2 dense
    units, log10 learning rate, head depth, dropout) gives each claimed one a slope with the
    others held fixed, and a 95% t interval. Supported: the interval excludes 0 on the
    claimed side; contradicted: it excludes 0 on the other side; otherwise inconclusive.
    """
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    transforms = {name: how for name, how, _, _ in ORIGINAL_CLAIMS}
    columns, names = [], []
    for name in varied:
        raw = [param_value(t, name) for t in done]
        if any(isinstance(v, str) for v in raw):  # a categorical (pooling): one indicator per other level
            levels = sorted(set(map(str, raw)))
            for level in levels[1:]:
                columns.append(np.array([float(str(v) == level) for v in raw]))
                names.append(f"{name}={level}")
            continue
        values = np.array(raw, dtype=float) if done else np.zeros(0)
        if len(values) and np.ptp(values) > 0:
            columns.append(transform(values, transforms.get(name, "linear")))
            names.append(name)
    y = np.array([accuracy(t) for t in done], dtype=float)
    design = np.column_stack([np.ones(len(done))] + columns) if done else np.zeros((0, 1))
    n, p = design.shape
    fitted = n > p and np.linalg.matrix_rank(design) == p
    if fitted:
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ coef
        sigma2 = float(residual @ residual) / (n - p)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        margin_factor = t_quantile(n - p)
    effects = []
    for name, how, direction, _ in ORIGINAL_CLAIMS:
        unit = TRANSFORM_UNITS[how]
        if name not in names:
            effects.append(Effect(name, unit, None, None, None, n, "inconclusive",
                                  "not varied in this study"))
            continue
        if not fitted:
            effects.append(Effect(name, unit, None, None, None, n, "inconclusive",
                                  f"{n} completed trials are too few for {p} coefficients"))
            continue
        index = names.index(name) + 1
        slope = float(coef[index])
        if abs(slope) < 1e-12:  # rounding noise of a flat fit, whose sign varies with the linear-algebra library
            slope = 0.0
        margin = margin_factor * math.sqrt(max(cov[index, index], 0.0))
        low, high = slope - margin, slope + margin
        if low > 0 or high < 0:
            agrees = (low > 0) == (direction > 0)
            verdict = "supported" if agrees else "contradicted"
            reason = "the 95% interval excludes zero"
        else:
            verdict, reason = "inconclusive", "the 95% interval includes zero"
        effects.append(Effect(name, unit, slope, low, high, n, verdict, reason))
    return effects


def confidence_interval(values: Sequence[float]) -> Interval:
    """Mean and two-sided 95% t interval; a single value has an infinitely wide interval."""
    values = [float(v) for v in values]
    n = len(values)
    centre = mean(values)
    if n < 2:
        return Interval(centre, -math.inf, math.inf, n)
    sd = float(np.std(values, ddof=1))
    margin = t_quantile(n - 1) * sd / math.sqrt(n)
    return Interval(centre, centre - margin, centre + margin, n)


def confirmed_configs(search_trials: Sequence[FrozenTrial],
                      confirm_trials: Sequence[FrozenTrial]) -> list[ConfirmedConfig]:
    """Confirmation runs grouped by the search trial they repeat, best mean first."""
    by_number = {t.number: t for t in search_trials}
    groups: dict[int, list[FrozenTrial]] = {}
    for trial in confirm_trials:
        if trial.state == TrialState.COMPLETE and TrialKey.CONFIRM_OF in trial.user_attrs:
            groups.setdefault(trial.user_attrs[TrialKey.CONFIRM_OF], []).append(trial)
    configs = []
    for number, runs in groups.items():
        original = by_number.get(number)
        seed_name = runs[0].user_attrs.get(TrialKey.SEED_NAME)
        tests = [r.user_attrs[TrialKey.TEST_ACCURACY] for r in runs if TrialKey.TEST_ACCURACY in r.user_attrs]
        held_out = [r.user_attrs[TrialKey.HOLDOUT_ACCURACY] for r in runs if TrialKey.HOLDOUT_ACCURACY in r.user_attrs]
        configs.append(ConfirmedConfig(
            trial_number=number,
            label=seed_name or f"trial {number}",
            params=dict(runs[0].params),
            search_value=accuracy(original) if original is not None else None,
            interval=confidence_interval([accuracy(r) for r in runs]),
            test_interval=confidence_interval(tests) if tests else None,
            holdout_interval=confidence_interval(held_out) if held_out else None,
        ))
    return sorted(configs, key=lambda c: -c.interval.mean)


def lead_over(winner: ConfirmedConfig, reference: ConfirmedConfig,
              winner_runs: Sequence[float], reference_runs: Sequence[float]) -> Lead:
    """Winner minus reference mean accuracy with a Welch 95% interval; beyond noise if it excludes 0."""
    a, b = np.asarray(winner_runs, float), np.asarray(reference_runs, float)
    difference = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Lead(winner.label, reference.label, difference, -math.inf, math.inf, False)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Lead(winner.label, reference.label, difference, difference, difference, difference > 0)
    freedom = (va + vb) ** 2 / ((va ** 2) / (len(a) - 1) + (vb ** 2) / (len(b) - 1))
    margin = t_quantile(max(1, int(freedom))) * se
    low, high = difference - margin, difference + margin
    return Lead(winner.label, reference.label, difference, low, high, low > 0)


def runs_of(confirm_trials: Sequence[FrozenTrial], trial_number: int) -> list[float]:
    """Validation accuracies of the completed confirmation runs of one search trial."""
    return [accuracy(t) for t in confirm_trials if t.state == TrialState.COMPLETE
            and t.user_attrs.get(TrialKey.CONFIRM_OF) == trial_number]


def best_so_far(trials: Sequence[FrozenTrial]) -> BestCurve:
    """The best-so-far curve of a study, in order of completion (trials without times are left out)."""
    ended = sorted((t for t in trials if t.datetime_start and t.datetime_complete
                    and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)),
                   key=lambda t: t.datetime_complete)
    if not ended:
        return BestCurve([], [], [])
    origin = min(t.datetime_start for t in ended)
    best, curve = None, BestCurve([], [], [])
    for index, trial in enumerate(ended, start=1):
        if trial.state == TrialState.COMPLETE and (best is None or accuracy(trial) > best):
            best = accuracy(trial)
        curve.trials_run.append(index)
        curve.elapsed_seconds.append((trial.datetime_complete - origin).total_seconds())
        curve.best.append(best)
    return curve


def best_within(curve: BestCurve, seconds: float) -> float | None:
    """The best value a study had reached `seconds` after it started."""
    reached = [b for t, b in zip(curve.elapsed_seconds, curve.best) if t <= seconds and b is not None]
    return reached[-1] if reached else None


def budget_key(user_attrs: dict, default_epochs: int | None = None) -> tuple:
    """(epochs, patience, holdout fingerprint) a confirmation run was measured with.

    Runs recorded before budgets were (epochs missing) count as `default_epochs`."""
    return (user_attrs.get(TrialKey.CONFIRM_EPOCHS, default_epochs), user_attrs.get(TrialKey.CONFIRM_PATIENCE),
            user_attrs.get(TrialKey.HOLDOUT_FINGERPRINT))


def latest_confirmation(confirm_trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The completed confirmation runs measured like the most recent one (same epochs, patience
    and held-out folder): runs of different budgets are not comparable."""
    done = [t for t in confirm_trials if t.state == TrialState.COMPLETE]
    if not done:
        return []
    latest = budget_key(max(done, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)).user_attrs)
    return [t for t in done if budget_key(t.user_attrs) == latest]


def holdout_runs_of(confirm_trials: Sequence[FrozenTrial], trial_number: int) -> list[list[int]]:
    """Per-image held-out correctness (0/1) of each completed confirmation run of one search trial."""
    return [t.user_attrs[TrialKey.HOLDOUT_CORRECT] for t in confirm_trials if t.state == TrialState.COMPLETE
            and t.user_attrs.get(TrialKey.CONFIRM_OF) == trial_number and TrialKey.HOLDOUT_CORRECT in t.user_attrs]


class WinningSetting(NamedTuple):
    """What the best trials chose for one hyperparameter, against the rest."""

    name: str
    importance: float
    best_count: int  # trials in the best group
    best_text: str  # "cosine in 5 of 6" or "median 3.1e-04"
    rest_text: str  # the same for the other completed trials


def _setting_text(values: list, numeric: bool) -> str:
    """The median of a numeric parameter's values, else its most common value and how often."""
    if not values:
        return "-"
    if numeric:
        return f"median {float(np.median(values)):.4g}"
    common = max(sorted(set(map(str, values))), key=lambda v: [str(x) for x in values].count(v))
    return f"{common} in {[str(x) for x in values].count(common)} of {len(values)}"


def winning_settings(trials: Sequence[FrozenTrial], importances: dict[str, float], score,
                     share: float = 0.25, limit: int = 5) -> list[WinningSetting]:
    """For the `limit` most important hyperparameters: their values in the best `share` of the
    completed trials (by `score`, higher is better; at least 2 trials) against the others."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and score(t) is not None]
    if len(done) < 4:
        return []
    ranked = sorted(done, key=lambda t: (-score(t), t.number))
    cut = max(2, math.ceil(share * len(ranked)))
    best, rest = ranked[:cut], ranked[cut:]
    settings = []
    # Equal importances in name order: Optuna's dict order of ties follows string hashing, which
    # differs between processes.
    for name, importance in sorted(importances.items(), key=lambda item: (-item[1], item[0]))[:limit]:
        best_values = [param_value(t, name) for t in best if param_value(t, name) is not None]
        rest_values = [param_value(t, name) for t in rest if param_value(t, name) is not None]
        every = best_values + rest_values
        # a number with few values (choices such as 0 / 1e-4) reads better as counts than as a median
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in every) and len(set(every)) > 2
        settings.append(WinningSetting(name, float(importance), len(best), _setting_text(best_values, numeric),
                                       _setting_text(rest_values, numeric)))
    return settings
