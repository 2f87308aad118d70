"""`python -m study report`: write reports/<study>/README.md, its figures and trials.csv.

The page follows the original project's: one learning curve per configuration, the seven's
table (with the published numbers beside the ones measured here), a results chart, and a
reflection on its three conclusions, computed from the trials instead of asserted. It works
on finished and running studies, and on studies where nothing has completed yet.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.figures import plots
from study.markdown_text import md, pct
from study.report.analysis import (
    ORIGINAL_CLAIMS,
    best_of_seven,
    best_so_far,
    claim_effects,
    confirmed_configs,
    edge_warnings,
    holdout_runs_of,
    latest_confirmation,
    lead_over,
    pruning_savings,
    runs_of,
    seven_rows,
    state_counts,
    winning_settings,
)
from study.report.cost_section import cost_section
from study.space.objectives import OBJECTIVES
from study.space.spec import MOBILENET_PARAMETERS, RECIPE_PARAMETERS, space_of_study
from study.stats.budget import trial_still_improving
from study.store.record import (
    KERAS_TUNER_SUFFIX,
    LONG_KEYS,
    STAGE2_SUFFIX,
    StudyKey,
    TrialKey,
    accuracy,
    confirm_study_name,
    param_value,
    top_trials,
)
from study.store.storage import (
    StorageLocation,
    best_model_paths,
    load_study,
    mask_password,
    open_storage,
    study_file_stem,
)

TOP_K = 5

_ABSOLUTE_PATH = re.compile(r"(?<![^\s`'\"(=])(/[^\s'\"`|)]+)")  # a path that starts a word


def relative_paths(text: str) -> str:
    """Absolute paths in `text` rewritten relative to the working folder, so a report committed
    to a repository says `../data/photos`, not where one machine keeps it."""
    import os

    text = re.sub(r"\b(sqlite|journal):///(/[^\s'\"`|)]+)", lambda m: f"{m.group(1)}:///{os.path.relpath(m.group(2))}", text)
    return _ABSOLUTE_PATH.sub(lambda m: os.path.relpath(m.group(1)), text)


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def params_text(trial) -> str:
    parts = []
    for name in ("head_depth", "dense_units", "learning_rate", "dropout"):
        value = param_value(trial, name)
        if value is not None:
            parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return ", ".join(parts)


def write_report(location: StorageLocation, study_name: str, out_dir: Path, show_images: bool = True,
                 artifacts: str | None = None) -> Path:
    """Extract, draw and write the report of one study; returns the README path.

    Without `show_images`, no figure shows the data's own images (thumbnails of mistakes).
    A study with a shared artifact store (`artifacts`, or the one it recorded) has its best
    model's predictions fetched from there."""
    from study.store.artifacts import fetch_best, study_store

    storage = open_storage(location)
    study = load_study(location, study_name, storage)
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    fetch_best(location, study_name, trials, *study_store(location, attrs, artifacts, study_name))
    folder = out_dir / study_file_stem(study_name)
    figures = folder / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):  # figures of trials that no longer qualify must not linger
        old.unlink()

    confirm_trials = []
    try:
        confirm_trials = optuna.load_study(study_name=confirm_study_name(study_name),
                                           storage=storage).get_trials(deepcopy=False)
    except KeyError:
        pass

    space = None
    if StudyKey.SPACE_TEXT in attrs:
        space = space_of_study(attrs)
    epochs = attrs.get(StudyKey.TRAIN, {}).get("epochs")

    lines: list[str] = [f"# Study {md(study_name)}", ""]
    lines += summary_section(study_name, attrs, trials, epochs, location, confirm_trials)
    patience = attrs.get(StudyKey.TRAIN, {}).get("patience")
    lines += seven_section(trials, patience)
    lines += beyond_section(trials, space, patience)
    with plots.fonts_for(attrs.get(StudyKey.CLASS_NAMES, [])):
        lines += best_model_failures(location, study_name, trials, figures, folder, show_images)
        lines += cost_section(trials, attrs, figures, folder, study_name, location.display)
        lines += figures_section(study, trials, space, figures, folder)
    lines += reflection_section(trials, space)
    lines += confirmation_section(trials, confirm_trials, study_name)
    lines += stage_two_section(study_name, storage)
    lines += engines_section(study_name, storage, location, figures, folder)
    lines += provenance_section(attrs, location, space)
    readme = folder / "README.md"
    readme.write_text(relative_paths("\n".join(lines)) + "\n", encoding="utf-8")
    write_trials_csv(study, folder / "trials.csv")
    return readme


def summary_section(study_name, attrs, trials, epochs, location, confirm_trials=()) -> list[str]:
    counts = state_counts(trials)
    classes = attrs.get(StudyKey.CLASS_NAMES, [])
    split = attrs.get(StudyKey.SPLIT_COUNTS, {})
    lines = ["## Summary", ""]
    if classes:
        lines.append(f"- **Data**: `{attrs.get(StudyKey.DATA_DIR, '?')}`, {len(classes)} classes "
                     f"({', '.join(md(c) for c in classes)}); train {split.get('train', '?')} / validation "
                     f"{split.get('val', '?')} / test {split.get('test', '?')} images, split seed "
                     f"{attrs.get(StudyKey.SPLIT_SEED, '?')}, "
                     f"fingerprint `{attrs.get(StudyKey.DATA_FINGERPRINT, '?')}`.")
    lines.append(f"- **Trials**: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed"
                 + (f", {counts.running} running" if counts.running else "") + ".")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if not done:
        lines += ["", "**No trial has completed yet**, so there is no best configuration to report."]
        reasons = sorted({t.user_attrs.get(TrialKey.FAIL_REASON, "?") for t in trials if t.state == TrialState.FAIL})
        if reasons:
            lines.append("Failure reasons: " + "; ".join(f"`{r}`" for r in reasons) + ".")
        return lines + [""]
    best = max(done, key=lambda t: accuracy(t))
    label = best.user_attrs.get(TrialKey.SEED_NAME, f"trial {best.number}")
    lines.append(f"- **Best**: {md(label)} ({params_text(best)}): validation accuracy {pct(accuracy(best))}, "
                 f"test accuracy {pct(best.user_attrs.get(TrialKey.TEST_ACCURACY))}.")
    seven_best = best_of_seven(seven_rows(trials))
    if seven_best is not None:
        gap = accuracy(best) - seven_best.val_accuracy
        lines.append(f"- **Best of the seven here**: {md(seven_best.name)}, validation {pct(seven_best.val_accuracy)}, "
                     f"test {pct(seven_best.test_accuracy)}; the best trial is "
                     f"{100 * gap:+.2f} points from it on validation (the images that chose it).")
    if confirm_trials:
        comparison = held_out_comparison(trials, confirm_trials)
        if comparison is not None:
            lines.append("- **On held-out photos**: " + held_out_sentence(comparison))
    ensemble = attrs.get(StudyKey.ENSEMBLE)
    if ensemble:
        lines.append("- " + ensemble_sentence(ensemble))
    seven_trials = [t for t in trials if TrialKey.SEED_NAME in t.user_attrs and t.state == TrialState.COMPLETE]
    top = top_trials(trials, TOP_K)
    climbing_seven = sum(trial_still_improving(t) for t in seven_trials)
    climbing_top = sum(trial_still_improving(t) for t in top)
    if climbing_seven or climbing_top:
        lines.append(f"- **Still improving at the last epoch**: {climbing_seven} of the {len(seven_trials)} completed "
                     f"seed trials and {climbing_top} of the top {len(top)} searched trials (best epoch = last, last "
                     "third rising). "
                     "A comparison with them is about the epoch budget, not the configuration.")
    total = sum(t.user_attrs.get(TrialKey.TRAIN_SECONDS, 0.0) for t in trials)
    lines.append(f"- **Training time**: {seconds_text(total)} over all trials.")
    objectives = attrs.get(StudyKey.OBJECTIVES, ["accuracy"])
    if len(objectives) > 1:
        lines.append(f"- **Objectives**: {', '.join(objectives)}, a multi-objective study: Optuna prunes only "
                     "single-objective studies, so every trial ran its full epochs; the best model is the most "
                     "accurate trial. See \"Accuracy against cost\".")
    elif epochs:
        savings = pruning_savings(trials, epochs)
        lines.append(f"- **Pruning** stopped {savings.pruned_trials} trials early and spared "
                     f"{savings.epochs_not_run} epochs, about {seconds_text(savings.seconds_saved)} at their "
                     f"own measured seconds per epoch.")
    return lines + [""]


STILL_IMPROVING_NOTE = ("*Still improving*: validation accuracy was best at the last epoch and rising over the "
                        "last third of the epochs, so more epochs would likely have raised it.")


def improving_text(trial) -> str:
    return "**yes**" if trial_still_improving(trial) else "-"


def value_text(value) -> str:
    """A parameter's value in a table: floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def best_epoch_text(trial) -> str:
    """`best / run` epochs of an early-stopped trial."""
    a = trial.user_attrs
    return f"{a.get(TrialKey.BEST_EPOCH, '-')} / {a.get(TrialKey.EPOCHS_RUN, '-')}"


def seven_section(trials, patience: int | None = None) -> list[str]:
    rows = seven_rows(trials)
    lines = ["## The seven, reproduced", ""]
    if not rows:
        return lines + ["This study's space has no seed configurations.", ""]
    lines += [
        "The original project's table, with its published numbers beside the ones measured here. "
        "**The data differ** (the original used its own Korean food photos, trained far longer on a "
        "GPU, and reported test accuracy): compare the ranking, not the numbers.", "",
        "| Model | Hidden Layer | Dense Count | Learning Rate | Published accuracy | Published time | "
        "Validation accuracy here | Test accuracy here | Time here | State | "
        + ("Best / run epochs | " if patience else "") + "Still improving |",
        "| :-- | :-: | :-: | :-: | :-: | :-: | :-: | :-: | :-: | :-: | :-: |" + (" :-: |" if patience else ""),
    ]
    by_number = {t.number: t for t in trials}
    for r in rows:
        published_time = seconds_text(r.published_time_ms / 1000) if r.published_time_ms else "-"
        lines.append(f"| **{md(r.name)}** | {r.head_depth} | {r.dense_units} | {r.learning_rate:g} | "
                     f"{pct(r.published_accuracy)} | {published_time} | {pct(r.val_accuracy)} | "
                     f"{pct(r.test_accuracy)} | {seconds_text(r.train_seconds)} | {r.state.lower()} | "
                     + (f"{best_epoch_text(by_number[r.trial_number])} | " if patience else "")
                     + f"{improving_text(by_number[r.trial_number])} |")
    if patience:
        epochs = f"{patience} epoch{'s' if patience != 1 else ''}"
        lines += ["", f"Every trial trained until {epochs} in a row brought no better validation accuracy (or its "
                  "epoch budget ran out) and kept its best epoch: *Best / run epochs*."]
    return lines + ["", STILL_IMPROVING_NOTE, ""]


def beyond_section(trials, space, patience: int | None = None) -> list[str]:
    lines = ["## Beyond the seven", ""]
    best = top_trials(trials, TOP_K)
    if not best:
        return lines + ["No searched trial (outside the seven) has completed yet.", ""]
    shown = MOBILENET_PARAMETERS + RECIPE_PARAMETERS
    extra = [p.name for p in space.varied() if p.name in shown] if space is not None else []
    lines += ["The best searched trials:", "",
              "| Trial | " + "".join(f"{name.replace('_', ' ').capitalize()} | " for name in extra)
              + "Hidden layers | Dense units | Learning rate | Dropout | Validation | Test | "
              + ("Best / run epochs | " if patience else "Epochs | ")
              + "Trainable parameters | Still improving |", "| :-: " * (10 + len(extra)) + "|"]
    for t in best:
        a = t.user_attrs
        epochs = best_epoch_text(t) if patience else a.get(TrialKey.EPOCHS_RUN, '-')
        lines.append(f"| {t.number} | " + "".join(f"{value_text(param_value(t, name))} | " for name in extra)
                     + f"{param_value(t, 'head_depth')} | {param_value(t, 'dense_units')} | "
                     f"{param_value(t, 'learning_rate'):.2e} | {param_value(t, 'dropout'):.2f} | {pct(accuracy(t))} | "
                     f"{pct(a.get(TrialKey.TEST_ACCURACY))} | {epochs} | "
                     f"{a.get(TrialKey.TRAINABLE_PARAMS, 0):,} | {improving_text(t)} |")
    lines.append("")
    overall = top_trials(trials, 1, include_seeds=True)[0]
    if space is not None:
        params = {p.name: param_value(overall, p.name) for p in space.varied()}
        for w in edge_warnings(params, space.varied()):
            lines.append(f"> **Warning**: the best trial's `{w.parameter}` = {w.value:g} sits near the {w.edge} "
                         f"edge ({w.bound:g}) of the search space; the optimum may lie outside it. "
                         "Widen the range and search again.")
            lines.append("")
    return lines


def best_model_failures(location, study_name, trials, figures: Path, folder: Path,
                        show_images: bool = True) -> list[str]:
    """"Where the best model fails", from the predictions saved with the best model."""
    import json

    from study.report.failure_section import failure_section
    from study.store.predictions import load_predictions
    from study.store.record import predictions_path

    if not any(t.state == TrialState.COMPLETE for t in trials):
        return []
    model_path, meta_path = best_model_paths(location, study_name)
    predictions = load_predictions(predictions_path(model_path))
    if predictions is None or not meta_path.is_file():
        return ["## Where the best model fails", "",
                f"The best model's test predictions are not at `{predictions_path(model_path)}` (the model was "
                "saved elsewhere or by an older version). `python -m study evaluate --data FOLDER --study-name "
                f"{study_name} --report DIR` writes this section for any folder of labelled images.", ""]
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    where = (f"the test split ({len(predictions.true)} images the study never trained or selected on), with the "
             f"best model (trial {meta.get('trial_number', '?')}, validation accuracy "
             f"{pct(meta.get('validation_accuracy'))})")
    return failure_section(predictions, figures, folder, where, show_images=show_images)


def figures_section(study, trials, space, figures: Path, folder: Path) -> list[str]:
    def link(path: Path | None, alt: str) -> list[str]:
        return [f"![{alt}]({path.relative_to(folder).as_posix()})", ""] if path else []

    lines = ["## Figures", "", "### Learning curves", ""]
    curves = [t for t in trials if t.user_attrs.get(TrialKey.HISTORY) and TrialKey.SEED_NAME in t.user_attrs]
    curves.sort(key=lambda t: t.user_attrs[TrialKey.SEED_NAME])
    curves += top_trials(trials, TOP_K)
    for t in curves:
        label = t.user_attrs.get(TrialKey.SEED_NAME, f"trial {t.number}")
        title = f"{label}: {params_text(t)} ({t.state.name.lower()})"
        path = plots.learning_curve(t.user_attrs[TrialKey.HISTORY], title, figures / f"curve_{t.number:04d}.png",
                                    t.user_attrs.get(TrialKey.BEST_EPOCH))
        lines.append(f"**{md(label)}** ({params_text(t)})")
        lines.append("")
        lines += link(path, f"learning curve of {label}")
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return lines + ["No completed trial to chart yet.", ""]
    lines += ["### Results of all completed trials", ""]
    lines += link(plots.results_chart(trials, figures / "results.png"), "results chart")
    lines += ["### Optimization history", ""]
    lines += link(plots.optimization_history(trials, figures / "history.png"), "optimization history")
    lines += ["### Intermediate values and pruning", ""]
    lines += link(plots.intermediate_values(trials, figures / "intermediate.png"), "intermediate values")
    importances = plots.param_importances(study, figures / "importances.png")
    lines += ["### Hyperparameter importances", ""]
    lines += link(importances, "parameter importances") if importances else [
        "Not computable yet (too few completed trials with varied hyperparameters).", ""]
    if importances:
        lines += importance_lines(study, trials)
    if space is not None:
        lines += ["### Accuracy against each varied hyperparameter", ""]
        for spec in space.varied():
            path = plots.axis_plot(trials, spec.name, spec.log, figures / f"axis_{spec.name}.png")
            lines += link(path, f"accuracy against {spec.name}")
    return lines


def importance_lines(study, trials) -> list[str]:
    """What decided each objective (PED-ANOVA) and which settings the best quarter of trials chose."""
    objectives = study.user_attrs.get(StudyKey.OBJECTIVES, ["accuracy"])
    targets = [("validation accuracy", 0, 1)] + [(OBJECTIVES[name].metric if name in OBJECTIVES else name, index, -1)
                                                 for index, name in enumerate(objectives) if index > 0]
    lines = []
    for label, index, sign in targets:
        importances = ped_anova_importances(study, index, sign)
        settings = winning_settings(trials, importances, lambda t, i=index, s=sign: s * t.values[i] if t.values
                                    else None)
        if not settings:
            continue
        best_word = "most accurate" if sign > 0 else "cheapest"
        lines.append(f"Importance for {label}: " + ", ".join(f"`{s.name}` {s.importance:.2f}" for s in settings)
                     + f". What the {best_word} quarter of the trials ({settings[0].best_count}) chose, against the "
                     "rest:")
        lines += [f"- `{s.name}`: {s.best_text} (the rest: {s.rest_text})." for s in settings]
        lines.append("")
    return lines


def ped_anova_importances(study, index: int, sign: int) -> dict[str, float]:
    """Optuna's PED-ANOVA importances for one objective (it minimises its target); {} if not computable."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                target=lambda t: -sign * t.values[index])
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def reflection_section(trials, space) -> list[str]:
    lines = ["## Reflection, computed", "",
             "The original drew three conclusions from single runs that differ by tenths of a point. "
             "Here each is tested on this study's completed trials: one least-squares fit of validation "
             "accuracy on all varied hyperparameters (dense units as log2, learning rate as log10) gives "
             "each effect with the others held fixed, and a 95% confidence interval. Pruned trials are left "
             "out (they never finished), which favours configurations that learn early.", "",
             "| The original's conclusion | Effect here (accuracy points) | 95% interval | Trials | Verdict |",
             "| :-- | :-: | :-: | :-: | :-- |"]
    varied = [p.name for p in space.varied()] if space is not None else ["head_depth", "dense_units",
                                                                        "learning_rate", "dropout"]
    claims = {name: text for name, _, _, text in ORIGINAL_CLAIMS}
    for effect in claim_effects(trials, varied):
        if effect.slope is None:
            effect_text, interval = "-", "-"
        else:
            effect_text = f"{100 * effect.slope:+.2f} {effect.unit}"
            interval = f"[{100 * effect.ci_low:+.2f}, {100 * effect.ci_high:+.2f}]"
        lines.append(f"| {claims[effect.parameter]} | {effect_text} | {interval} | {effect.n_trials} | "
                     f"**{effect.verdict}** ({effect.reason}) |")
    return lines + [""]


def interval_text(interval) -> str:
    if not interval:
        return "-"
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):  # one run: no interval
        return f"{pct(interval.mean)} (one run)"
    return f"{pct(interval.mean)} [{pct(interval.low)}, {pct(interval.high)}]"


def held_out_comparison(trials, confirm_trials):
    """(winner, reference, PairedComparison) of the confirmed winner against the best of the
    seven on the held-out images, or None without `confirm --holdout` runs of both."""
    from study.stats.paired import compare_paired

    confirm_trials = latest_confirmation(confirm_trials)
    configs = confirmed_configs(trials, confirm_trials)
    seeds = [c for c in configs if not c.label.startswith("trial ")]
    searched = [c for c in configs if c.label.startswith("trial ")]
    if not seeds or not searched:
        return None
    winner, reference = searched[0], seeds[0]
    winner_runs = holdout_runs_of(confirm_trials, winner.trial_number)
    reference_runs = holdout_runs_of(confirm_trials, reference.trial_number)
    if not winner_runs or not reference_runs or len(winner_runs[0]) != len(reference_runs[0]):
        return None
    return winner, reference, compare_paired(winner_runs, reference_runs)


VERDICT_WORDS = {"holds": "the lead **holds** on unseen photos",
                 "reversed": "the lead is **reversed** on unseen photos: the best of the seven is better there",
                 "not established": "the lead **does not hold** on unseen photos: the interval includes zero"}


def held_out_sentence(comparison) -> str:
    winner, reference, paired = comparison
    return (f"{md(winner.label)} against {md(reference.label)} on the same {paired.n_images} held-out images: "
            f"{100 * paired.difference:+.2f} points, 95% bootstrap interval [{100 * paired.ci_low:+.2f}, "
            f"{100 * paired.ci_high:+.2f}]; McNemar's exact test p = {paired.p_value:.3g} "
            f"({paired.only_winner_right} images only the winner gets right, {paired.only_reference_right} only "
            f"the reference): {VERDICT_WORDS[paired.verdict]}"
            + ("; McNemar's test, which sees only majority votes, does not reject equal accuracy at 5%, so the "
               "lead is small." if paired.verdict == "holds" and paired.p_value >= 0.05 else "."))


def ensemble_sentence(ensemble: dict) -> str:
    """The ensemble's line: its members as run (not retrained), beside the best trial alone."""
    text = (f"**Ensemble of the {ensemble['top']} most accurate trials** (trials "
            f"{', '.join(map(str, ensemble['members']))} as run, probabilities averaged, "
            f"`python -m study ensemble`): test accuracy {pct(ensemble['test_accuracy'])} against "
            f"{pct(ensemble['best_test_accuracy'])} for the best trial alone ({ensemble['test_images']} images)")
    if "holdout_accuracy" not in ensemble:
        return text + "."
    return text + (f"; on {ensemble['holdout_images']} held-out photos {pct(ensemble['holdout_accuracy'])} against "
                   f"{pct(ensemble['best_holdout_accuracy'])}, {100 * ensemble['lead']:+.2f} points for the ensemble, "
                   f"95% bootstrap interval [{100 * ensemble['lead_low']:+.2f}, {100 * ensemble['lead_high']:+.2f}], "
                   f"McNemar p = {ensemble['mcnemar_p']:.3g}.")


def confirmation_section(trials, confirm_trials, study_name) -> list[str]:
    lines = ["## Confirmation", ""]
    confirm_trials = latest_confirmation(confirm_trials)
    configs = confirmed_configs(trials, confirm_trials)
    if not configs:
        return lines + [f"Not run yet: `python -m study confirm --study-name {study_name}` retrains the best "
                        "configurations and the best of the seven with several seeds.", ""]
    first = confirm_trials[0].user_attrs
    budget = f"{first[TrialKey.CONFIRM_EPOCHS]} epochs" if TrialKey.CONFIRM_EPOCHS in first else "the study's epochs"
    if first.get(TrialKey.CONFIRM_PATIENCE):
        budget = (f"up to {first[TrialKey.CONFIRM_EPOCHS]} epochs, stopped after {first[TrialKey.CONFIRM_PATIENCE]} "
                  "without a "
                  "better validation accuracy (the best epoch restored)")
    has_holdout = any(c.holdout_interval for c in configs)
    lines += [f"Each configuration retrained with different seeds (same data and split), {budget}; mean and 95% "
              "interval of the best-epoch validation accuracy, of test accuracy"
              + (", and of accuracy on the held-out folder (images the study never trained, validated or "
                 "selected on)." if has_holdout else "."), "",
              "| Configuration | Parameters | Search value | Runs | Validation mean [95% CI] | Test mean [95% CI] |"
              + (" Held-out mean [95% CI] |" if has_holdout else ""),
              "| :-- | :-- | :-: | :-: | :-: | :-: |" + (" :-: |" if has_holdout else "")]
    for c in configs:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.params.items())
        lines.append(f"| {md(c.label)} | {params} | {pct(c.search_value)} | {c.interval.n} | "
                     f"{interval_text(c.interval)} | {interval_text(c.test_interval)} |"
                     + (f" {interval_text(c.holdout_interval)} |" if has_holdout else ""))
    lines.append("")
    climbing = sum(trial_still_improving(t) for t in confirm_trials)
    if climbing:
        lines += [f"{climbing} of these {len(confirm_trials)} runs were still improving at their last epoch.", ""]
    comparison = held_out_comparison(trials, confirm_trials)
    if comparison is not None:
        lines += ["**Paired, on held-out photos**: " + held_out_sentence(comparison), ""]
    seeds = [c for c in configs if not c.label.startswith("trial ")]
    searched = [c for c in configs if c.label.startswith("trial ")]
    if seeds and searched:
        winner, reference = searched[0], seeds[0]
        lead = lead_over(winner, reference, runs_of(confirm_trials, winner.trial_number),
                         runs_of(confirm_trials, reference.trial_number))
        verdict = "larger than the noise" if lead.beyond_noise else "not larger than the noise"
        interval = (f"95% interval [{100 * lead.ci_low:+.2f}, {100 * lead.ci_high:+.2f}] (Welch)"
                    if math.isfinite(lead.ci_low) and math.isfinite(lead.ci_high)
                    else "no interval with fewer than two runs each (`--seeds`)")
        lines.append(f"The confirmed winner, {md(lead.winner)}, leads the best of the seven ({md(lead.reference)}) by "
                     f"{100 * lead.difference:+.2f} points on validation, {interval}: the lead is **{verdict}**.")
        lines.append("")
    return lines


def stage_two_section(study_name, storage) -> list[str]:
    """The fine-tuned heads of `--mode two-stage`, apart from the cached search above."""


    try:
        trials = optuna.load_study(study_name=study_name + STAGE2_SUFFIX, storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []
    lines = ["## Stage 2: the best heads fine-tuned", "",
             "Stage 1 (everything above) searched heads on cached features of the frozen base. Stage 2 trained "
             "the best of them again and fine-tuned them with the base unfrozen at a lower learning rate.", "",
             "| Stage 1 trial | Parameters | Stage 1 validation | Head only (retrained) | Fine-tuned validation | "
             "Fine-tuned test | Unfrozen blocks | State |", "| :-: | :-- | :-: | :-: | :-: | :-: | :-: | :-: |"]
    for t in sorted(trials, key=lambda t: t.number):
        a = t.user_attrs
        lines.append(f"| {a.get(TrialKey.STAGE1_TRIAL, '-')} | {params_text(t)} | "
                     f"{pct(a.get(TrialKey.STAGE1_VALUE))} | {pct(a.get(TrialKey.HEAD_ONLY_VAL_ACCURACY))} | "
                     f"{pct(accuracy(t))} | {pct(a.get(TrialKey.TEST_ACCURACY))} | "
                     f"{a.get('unfreeze_blocks', '-')} | {t.state.name.lower()} |")
    return lines + [""]


def engines_section(study_name, storage, location, figures: Path, folder: Path) -> list[str]:
    """Optuna against Keras Tuner, when `run --engine keras-tuner` imported a study beside this one."""
    from study.report.compare import comparison_rows

    try:
        tuner_trials = optuna.load_study(study_name=study_name + KERAS_TUNER_SUFFIX,
                                         storage=storage).get_trials(deepcopy=False)
    except KeyError:
        return []
    own = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    curves = {"Optuna": best_so_far(own), "Keras Tuner": best_so_far(tuner_trials)}
    path = plots.engine_comparison(curves, figures / "engines.png")
    lines = ["## Optuna against Keras Tuner", "", "| Engine | Trials | Wall time | Best | Best within the shorter "
             "wall time |", "| :-- | --: | --: | --: | --: |"]
    for label, trials, wall, best, within in comparison_rows(curves):
        lines.append(f"| {label} | {trials} | {seconds_text(wall)} | {pct(best)} | {pct(within)} |")
    return lines + ["", f"![best so far per engine]({path.relative_to(folder).as_posix()})", ""]


def provenance_section(attrs, location, space) -> list[str]:
    lines = ["## Provenance", "", f"- Storage: `{mask_password(location.url)}`",
             f"- Report written: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"]
    train = attrs.get(StudyKey.TRAIN, {})
    if train:
        lines.append("- Settings: " + ", ".join(f"{k}={v}" for k, v in train.items() if k != "augment")
                     + f"; augmentation {train.get('augment')}")
        lines.append(f"- Seeds: split {attrs.get(StudyKey.SPLIT_SEED)}, sampler and training {train.get('seed')} "
                     "(each trial trains with seed + its number)")
    if attrs.get(StudyKey.MACHINE):
        gpus = attrs.get(StudyKey.GPUS)
        lines.append(f"- Hardware: {attrs[StudyKey.MACHINE]}, {attrs.get(StudyKey.CPU_COUNT, '?')} CPU cores, "
                     f"GPUs: {', '.join(gpus) if gpus else 'none'}")
    if attrs.get(StudyKey.DEVICE):
        lines.append(f"- Trials trained on: {attrs[StudyKey.DEVICE].removeprefix('device: ')} "
                     f"({backend_text(attrs)}trial isolation: {attrs.get(StudyKey.ISOLATION, 'none')})")
    versions = attrs.get(StudyKey.PACKAGES) or {}
    if versions or attrs.get(StudyKey.PYTHON):
        lines.append(f"- Versions: study {attrs.get(StudyKey.PACKAGE_VERSION, '?')}, "
                     f"Python {attrs.get(StudyKey.PYTHON, '?')}"
                     + "".join(f", {k} {v}" for k, v in versions.items()))
    commands = attrs.get(StudyKey.COMMAND_LINES, [])
    if commands:
        lines += ["- Command lines:", "", "```", *[mask_password(c) for c in commands], "```"]
    if space is not None:
        lines += ["", f"Search space `{attrs.get(StudyKey.SPACE_NAME)}` as run:", "", "```toml",
                  space.text.rstrip(), "```"]
    return lines + [""]


def backend_text(attrs) -> str:
    """`Keras backend jax, ` for a study that recorded its backend (older studies did not)."""
    backend = attrs.get(StudyKey.KERAS_BACKEND)
    return f"Keras backend {backend}, " if backend else ""


def write_trials_csv(study, path: Path) -> None:
    """Every trial's number, state, value, params and short user attrs, one row each."""
    frame = study.trials_dataframe()
    drop = [f"user_attrs_{name}" for name in LONG_KEYS if f"user_attrs_{name}" in frame.columns]
    frame.drop(columns=drop).to_csv(path, index=False)
