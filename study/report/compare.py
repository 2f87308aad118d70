"""`python -m study compare STUDY_A STUDY_B`: best accuracy against trials run and wall time, two studies."""

from __future__ import annotations

from pathlib import Path

from study.figures import plots
from study.report.analysis import best_so_far, best_within
from study.store.storage import StorageLocation, load_study, open_storage, study_file_stem


def comparison_rows(curves: dict) -> list[tuple[str, int, float, float | None, float | None]]:
    """Per study: trials run, wall seconds, best overall, and best within the shorter study's wall time."""
    common = min((c.elapsed_seconds[-1] for c in curves.values() if c.elapsed_seconds), default=0.0)
    rows = []
    for label, curve in curves.items():
        wall = curve.elapsed_seconds[-1] if curve.elapsed_seconds else 0.0
        best = curve.best[-1] if curve.best else None
        rows.append((label, len(curve.trials_run), wall, best, best_within(curve, common)))
    return rows


def compare_studies(location: StorageLocation, names: list[str], out_dir: Path) -> tuple[Path, list]:
    """Draw the comparison figure and return it with the table rows."""
    storage = open_storage(location)
    curves = {name: best_so_far(load_study(location, name, storage).get_trials(deepcopy=False)) for name in names}
    figure = out_dir / ("compare-" + "-vs-".join(study_file_stem(n) for n in names) + ".png")
    plots.engine_comparison(curves, figure)
    return figure, comparison_rows(curves)
