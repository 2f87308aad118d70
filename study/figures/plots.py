"""Figures of the report: thin matplotlib renderers (Agg backend, PNG files, no display needed).

Each function draws one figure from trials or facts and writes it to the given path.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from study.store.record import COST_LABELS, CostKey, TrialKey, accuracy, param_value  # noqa: E402

COLOURS = {"COMPLETE": "#1f77b4", "PRUNED": "#d62728", "FAIL": "#7f7f7f", "seed": "#ff7f0e"}


def _save(figure, path: Path, tight_box: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90, bbox_inches="tight" if tight_box else None)
    plt.close(figure)
    return path


def learning_curve(history: dict[str, list[float]], title: str, path: Path,
                   best_epoch: int | None = None) -> Path:
    """Accuracy and loss per epoch, train and validation, as the original drew per configuration.

    Drawn on a figure of its own, outside pyplot's shared state: `run --jobs` draws the curves
    of trials that end together from several threads."""
    figure = Figure(figsize=(9, 3.4))
    left, right = figure.subplots(1, 2)
    epochs = range(1, len(history.get("loss", [])) + 1)
    for axis, metric in ((left, "accuracy"), (right, "loss")):
        axis.plot(epochs, history.get(metric, []), "o-", label=f"train {metric}")
        axis.plot(epochs, history.get(f"val_{metric}", []), "s-", label=f"validation {metric}")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def results_chart(trials: Sequence[FrozenTrial], path: Path) -> Path:
    """Validation (bar) and test (dot) accuracy of every completed trial, best first; seeds labelled."""
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -accuracy(t))
    height = max(2.5, 0.22 * len(done) + 1)
    figure, axis = plt.subplots(figsize=(8, height))
    labels = [t.user_attrs.get(TrialKey.SEED_NAME, f"trial {t.number}") for t in done]
    colours = [COLOURS["seed"] if TrialKey.SEED_NAME in t.user_attrs else COLOURS["COMPLETE"] for t in done]
    positions = range(len(done))
    axis.barh(positions, [accuracy(t) for t in done], color=colours, label="validation accuracy (best epoch)")
    axis.plot([t.user_attrs.get(TrialKey.TEST_ACCURACY, float("nan")) for t in done], positions, "k.",
              label="test accuracy")
    axis.set_yticks(list(positions), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("accuracy")
    axis.set_title("All completed trials (orange: the original seven)", fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def optimization_history(trials: Sequence[FrozenTrial], path: Path) -> Path:
    """Each completed trial's value by trial number, with the best so far."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    figure, axis = plt.subplots(figsize=(8, 3.4))
    axis.scatter([t.number for t in done], [accuracy(t) for t in done], s=14, label="trial")
    best, steps = float("-inf"), []
    for t in done:
        best = max(best, accuracy(t))
        steps.append(best)
    axis.step([t.number for t in done], steps, where="post", color="#d62728", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel("validation accuracy")
    axis.legend(fontsize=8)
    axis.set_title("Optimization history", fontsize=10)
    return _save(figure, path)


def intermediate_values(trials: Sequence[FrozenTrial], path: Path) -> Path:
    """Validation accuracy per epoch of every trial; pruned trials end in a red cross."""
    figure, axis = plt.subplots(figsize=(8, 3.8))
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        pruned = t.state == TrialState.PRUNED
        axis.plot(steps, values, color=COLOURS["PRUNED"] if pruned else COLOURS["COMPLETE"],
                  alpha=0.8 if pruned else 0.35, linewidth=1)
        if pruned:
            axis.plot(steps[-1], values[-1], "x", color=COLOURS["PRUNED"])
    axis.plot([], [], color=COLOURS["COMPLETE"], label="ran to the end")
    axis.plot([], [], "x-", color=COLOURS["PRUNED"], label="pruned here")
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy")
    axis.set_title("Intermediate values: where pruning cut trials", fontsize=10)
    axis.legend(fontsize=8)
    return _save(figure, path)


def param_importances(study, path: Path) -> Path | None:
    """Optuna's PED-ANOVA importances of the varied hyperparameters (native to Optuna, unlike
    fANOVA, which needs scikit-learn); None when they cannot be computed yet."""
    import optuna

    # Optuna's plot switches the global style to ggplot; a style context undoes that on exit.
    with plt.style.context("default"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            multi = len(study.directions) > 1  # importances for validation accuracy, the first objective
            axis = optuna.visualization.matplotlib.plot_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                target=(lambda t: -t.values[0]) if multi else None,  # PED-ANOVA minimises a target
                target_name="validation accuracy" if multi else "Objective Value")
        except (ValueError, RuntimeError, ZeroDivisionError, ImportError):
            plt.close("all")
            return None
        axis.set_title("Hyperparameter importances (PED-ANOVA)", loc="left", fontsize=10)  # replaces Optuna's
        return _save(axis.figure, path)


def axis_plot(trials: Sequence[FrozenTrial], parameter: str, log: bool, path: Path) -> Path:
    """Accuracy against one hyperparameter: completed (dots, seven as stars), pruned at their
    last reported value (crosses), failed along the bottom (grey ticks)."""
    figure, axis = plt.subplots(figsize=(5, 3.4))
    for t in trials:
        value = param_value(t, parameter)
        if value is None:
            continue
        if t.state == TrialState.COMPLETE:
            seed = TrialKey.SEED_NAME in t.user_attrs
            axis.plot(value, accuracy(t), "*" if seed else "o", color=COLOURS["seed" if seed else "COMPLETE"],
                      markersize=9 if seed else 5)
        elif t.state == TrialState.PRUNED and t.intermediate_values:
            axis.plot(value, t.intermediate_values[max(t.intermediate_values)], "x", color=COLOURS["PRUNED"])
        elif t.state == TrialState.FAIL:
            axis.plot(value, 0, "|", color=COLOURS["FAIL"], markersize=12)
    for state, marker in (("COMPLETE", "o"), ("seed", "*"), ("PRUNED", "x"), ("FAIL", "|")):
        label = {"COMPLETE": "complete", "seed": "the seven", "PRUNED": "pruned (last value)",
                 "FAIL": "failed"}[state]
        axis.plot([], [], marker, color=COLOURS[state], linestyle="", label=label)
    if log:
        axis.set_xscale("log")
    axis.set_xlabel(parameter)
    axis.set_ylabel("validation accuracy")
    axis.legend(fontsize=7)
    return _save(figure, path)


def engine_comparison(curves: dict, path: Path) -> Path:
    """Best validation accuracy so far against trials run and against wall time, one line per study."""
    figure, (by_trials, by_time) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, curve in curves.items():
        by_trials.step(curve.trials_run, [b if b is not None else float("nan") for b in curve.best],
                       where="post", label=label)
        by_time.step([s / 60 for s in curve.elapsed_seconds],
                     [b if b is not None else float("nan") for b in curve.best], where="post", label=label)
    by_trials.set_xlabel("trials run")
    by_time.set_xlabel("wall time (minutes)")
    for axis in (by_trials, by_time):
        axis.set_ylabel("best validation accuracy")
        axis.legend(fontsize=8)
    figure.suptitle("Best so far, per engine", fontsize=10)
    return _save(figure, path)


def fonts_for(texts):
    """A context in which figures render `texts` (class names in any script) without empty boxes."""
    from study.figures.fonts import font_families_for

    return plt.rc_context({"font.family": font_families_for(texts)})


def confusion_matrix_figure(counts, class_names: Sequence[str], path: Path) -> Path:
    """Rows normalised to the true class (colour), counts annotated, class names on both axes."""
    import numpy as np

    n = len(class_names)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    side = min(16, max(4.5, 0.55 * n + 2.5))
    figure, axis = plt.subplots(figsize=(side + 1, side))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    font = max(5, min(10, 120 // max(n, 1)))
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                axis.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=font,
                          color="white" if shares[i, j] > 0.5 else "black")
    axis.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=font + 1)
    axis.set_yticks(range(n), class_names, fontsize=font + 1)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    axis.set_title("Confusion matrix (rows normalised, counts annotated)", fontsize=10)
    return _save(figure, path, tight_box=True)  # long class names: keep the axis labels inside


def mistakes_figure(thumbnails, captions: Sequence[str], path: Path, columns: int = 4) -> Path:
    """A grid of images with one caption each (true -> predicted, probability)."""
    count = len(thumbnails)
    columns = min(columns, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for k, axis in enumerate(axes.flat):
        axis.axis("off")
        if k < count:
            axis.imshow(thumbnails[k])
            axis.set_title(captions[k], fontsize=8)
    return _save(figure, path, tight_box=True)


def cost_front(points, fronts: dict, path: Path) -> Path:
    """Validation accuracy against multiply-adds and against model size (log scales): every
    trial, the seven as labelled stars, each front as a step line."""

    searched = [p for p in points if not p.seed]
    seeds = [p for p in points if p.seed]
    figure, axes = plt.subplots(1, len(fronts), figsize=(5.2 * len(fronts), 3.8), squeeze=False)
    for axis, (cost, front) in zip(axes[0], fronts.items()):
        scale = (1 << 20) if cost == CostKey.MODEL_BYTES else 1e6
        unit = "MiB" if cost == CostKey.MODEL_BYTES else "M"
        axis.plot([getattr(p, cost) / scale for p in searched], [p.accuracy for p in searched], "o",
                  color=COLOURS["COMPLETE"], markersize=4, alpha=0.6, label="trial")
        axis.plot([getattr(p, cost) / scale for p in seeds], [p.accuracy for p in seeds], "*",
                  color=COLOURS["seed"], markersize=10, label="the seven")
        for p in seeds:
            axis.annotate(p.label.replace("mn_resultset", "rs"), (getattr(p, cost) / scale, p.accuracy),
                          fontsize=7, xytext=(3, 3), textcoords="offset points")
        xs = [getattr(p, cost) / scale for p in front]
        ys = [p.accuracy for p in front]
        axis.step(xs, ys, where="post", color=COLOURS["PRUNED"], linewidth=1.2, label="front")
        axis.plot(xs, ys, "o", markerfacecolor="none", markeredgecolor=COLOURS["PRUNED"], markersize=8)
        axis.set_xscale("log")
        axis.set_xlabel(f"{COST_LABELS[cost]} ({unit}, log scale)")
        axis.set_ylabel("validation accuracy")
        axis.legend(fontsize=7, loc="lower right")
    figure.suptitle("Accuracy against cost", fontsize=10)
    return _save(figure, path)
