"""The markdown section "Where the best model fails": per-class table, confused pairs, figures.

Written by `report` from the predictions saved beside the study's best model, and by
`evaluate --report DIR` from the same model's predictions on another folder.
"""

from __future__ import annotations

from pathlib import Path

from study.figures import plots
from study.markdown_text import md, pct
from study.report.failures import Predictions, confused_pairs, confusion_matrix, mistakes_of, per_class_rows

MAX_PAIRS = 5


def failure_section(predictions: Predictions, figures: Path, folder: Path, where: str,
                    heading: str = "## Where the best model fails", show_images: bool = True) -> list[str]:
    """Markdown lines of the section; its figures go to `figures` (linked relative to `folder`).

    `where` says which images these are, e.g. "the test split (560 images the study never
    trained or selected on)". Without `show_images` the confident mistakes are a table, not
    thumbnails (for reports shared where the photos may not be).
    """
    names = predictions.class_names
    true, predicted = predictions.true, predictions.predicted
    counts = confusion_matrix(true, predicted, len(names))
    rows = per_class_rows(counts, names)
    lines = [heading, ""]
    if len(true) == 0:
        return lines + ["No images to evaluate.", ""]
    accuracy = float((true == predicted).mean())
    mistakes = int((true != predicted).sum())
    lines += [f"On {where}: accuracy {pct(accuracy)}, {mistakes} mistake{'' if mistakes == 1 else 's'} in "
              f"{len(true)} images.", ""]
    present = [r for r in rows if r.images]
    ranked = sorted(present, key=lambda r: (r.f1 if r.f1 is not None else 0.0, r.name))
    lines += ["Classes from the weakest (lowest F1) to the strongest. Precision: of the images predicted as the "
              "class, the share that are; recall: of the class's images, the share found.", "",
              "| Class | Images | Precision | Recall | F1 | Most often mistaken for |",
              "| :-- | --: | --: | --: | --: | :-- |"]
    for r in ranked:
        mistaken = f"{md(r.mistaken_for)} ({r.mistaken_count})" if r.mistaken_for else "-"
        lines.append(f"| {md(r.name)} | {r.images} | {pct(r.precision, 1)} | {pct(r.recall, 1)} | "
                     f"{pct(r.f1, 1)} | {mistaken} |")
    lines.append("")
    pairs = confused_pairs(counts, names, MAX_PAIRS)
    if pairs:
        lines += ["Most confused pairs:", ""]
        lines += [f"- **{md(p.true_name)}** taken for **{md(p.predicted_name)}**: {p.count} of "
                  f"{int(counts[names.index(p.true_name)].sum())} images ({pct(p.share, 1)})." for p in pairs]
        lines.append("")
    else:
        lines += ["No image was misclassified.", ""]
    with plots.fonts_for(names):
        matrix = plots.confusion_matrix_figure(counts, names, figures / "confusion_matrix.png")
        lines += [f"![confusion matrix]({matrix.relative_to(folder).as_posix()})", ""]
        confident = mistakes_of(predictions)
        if confident and not show_images:
            lines += ["The most confident mistakes (thumbnails left out of this report):", "",
                      "| True class | Predicted | Probability |", "| :-- | :-- | --: |"]
            lines += [f"| {md(m.true_name)} | {md(m.predicted_name)} | {m.probability:.2f} |" for m in confident]
            lines.append("")
        elif confident:
            captions = [f"{m.true_name} -> {m.predicted_name}\np = {m.probability:.2f}" for m in confident]
            grid = plots.mistakes_figure(predictions.thumbnails, captions, figures / "confident_mistakes.png")
            lines += ["The most confident mistakes (true -> predicted, the probability the model gave its "
                      "wrong answer):", "", f"![most confident mistakes]({grid.relative_to(folder).as_posix()})", ""]
    return lines
