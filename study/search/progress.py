"""Progress lines: one line per finished trial, with its state, value, parameters and the best so far."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study.store.record import StudyKey, TrialKey, accuracy, best_by_accuracy


def format_trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """One progress line: number, state, value, params, seed name, time, best so far."""
    attrs = trial.user_attrs
    parts = [f"trial {trial.number:>3} {trial.state.name:<8}"]
    if trial.state == TrialState.COMPLETE:
        parts.append(f"val {accuracy(trial):.4f} test {attrs.get(TrialKey.TEST_ACCURACY, float('nan')):.4f}")
    elif trial.state == TrialState.PRUNED:
        parts.append(f"after {attrs.get(TrialKey.EPOCHS_RUN, '?')} epochs")
    elif trial.state == TrialState.FAIL:
        parts.append(f"({attrs.get(TrialKey.FAIL_REASON, 'failed')})")
    parts.append(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in trial.params.items()))
    if TrialKey.SEED_NAME in attrs:
        parts.append(f"[{attrs[TrialKey.SEED_NAME]}]")
    if trial.datetime_start and trial.datetime_complete:
        parts.append(f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f} s")
    cost_names = study.user_attrs.get(StudyKey.OBJECTIVES, ["accuracy"])[1:]
    if trial.state == TrialState.COMPLETE and cost_names:
        parts.append(" ".join(f"{name} {value:.4g}" for name, value in zip(cost_names, trial.values[1:])))
    best = best_by_accuracy(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if best is not None:
        parts.append(f"| best {accuracy(best):.4f} (#{best.number})")
    return "  ".join(parts)


class LiveTrialLine:
    """On a terminal, one line that lives while a trial trains: epoch k/N, the last validation
    accuracy and the seconds so far; it disappears when the trial's own line is printed.

    Off (every method a no-op) when the output is not a terminal, so logs and pipes get the
    plain per-trial lines only, and with `--verbose`, whose Keras lines would tear it.
    """

    def __init__(self, enabled: bool | None = None, console=None):
        import sys

        from study.quiet import is_verbose

        if enabled is None:
            enabled = sys.stdout.isatty() and not is_verbose()
        self.enabled = enabled
        self._console = console
        self._progress = None
        self._task = None

    def start(self, number: int, epochs: int) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self.stop()
        self._progress = Progress(
            TextColumn(f"trial {number:>3} training"), BarColumn(bar_width=20),
            TextColumn("epoch {task.completed}/{task.total}"), TextColumn("{task.fields[val]}"),
            TextColumn("{task.elapsed:.0f} s"), console=self._console, transient=True, refresh_per_second=4)
        self._task = self._progress.add_task("trial", total=epochs, val="")
        self._progress.start()

    def epoch(self, epoch: int, val_accuracy: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=epoch, val=f"val {val_accuracy:.4f}")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
