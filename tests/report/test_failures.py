"""Where the best model fails: per-class numbers, confusion matrix, mistakes, figures, fonts."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from study.report.failures import confused_pairs, confusion_matrix, mistakes_of, per_class_rows
from study.store.predictions import confident_mistakes, load_predictions, make_predictions, save_predictions

NAMES = ["비빔밥", "김치찌개", "pizza"]
# Hand-made: 4 bibimbap (3 right, 1 taken for kimchi stew), 3 kimchi stew (1 right, 2 taken for
# bibimbap), 2 pizza (both right), and nothing ever predicted as pizza wrongly.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
PREDICTED = np.array([0, 0, 0, 1, 1, 0, 0, 2, 2])


def probabilities_for(predicted: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Rows whose argmax is `predicted` with that probability, the rest spread evenly."""
    rows = np.full((len(predicted), len(NAMES)), 0.0)
    for i, (p, c) in enumerate(zip(predicted, confidence)):
        rows[i] = (1 - c) / (len(NAMES) - 1)
        rows[i, p] = c
    return rows


def test_confusion_matrix_and_per_class_numbers_match_a_hand_count():
    counts = confusion_matrix(TRUE, PREDICTED, 3)
    assert counts.tolist() == [[3, 1, 0], [2, 1, 0], [0, 0, 2]]
    bibimbap, stew, pizza = per_class_rows(counts, NAMES)
    # bibimbap: TP 3, predicted 5 (3 + 2 stews), actual 4
    assert bibimbap.images == 4
    assert bibimbap.precision == pytest.approx(3 / 5) and bibimbap.recall == pytest.approx(3 / 4)
    assert bibimbap.f1 == pytest.approx(2 * 3 / (4 + 5))
    assert (bibimbap.mistaken_for, bibimbap.mistaken_count) == ("김치찌개", 1)
    # kimchi stew: TP 1, predicted 2, actual 3
    assert stew.precision == pytest.approx(1 / 2) and stew.recall == pytest.approx(1 / 3)
    assert (stew.mistaken_for, stew.mistaken_count) == ("비빔밥", 2)
    assert (pizza.precision, pizza.recall, pizza.f1, pizza.mistaken_for) == (1.0, 1.0, 1.0, None)


def test_a_class_never_predicted_has_no_precision_and_f1_zero():
    counts = confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 0]), 2)
    _, never = per_class_rows(counts, ["a", "b"])
    assert never.precision is None and never.recall == 0.0 and never.f1 == 0.0


def test_confused_pairs_are_ordered_by_count():
    pairs = confused_pairs(confusion_matrix(TRUE, PREDICTED, 3), NAMES)
    assert [(p.true_name, p.predicted_name, p.count) for p in pairs] == [("김치찌개", "비빔밥", 2),
                                                                         ("비빔밥", "김치찌개", 1)]
    assert pairs[0].share == pytest.approx(2 / 3)


def test_confident_mistakes_come_most_confident_first_and_keep_thumbnails_of_mistakes_only():
    confidence = np.array([0.9, 0.9, 0.9, 0.6, 0.8, 0.95, 0.7, 0.9, 0.9])
    probabilities = probabilities_for(PREDICTED, confidence)
    assert confident_mistakes(TRUE, probabilities).tolist() == [5, 6, 3]
    images = np.stack([np.full((200, 200, 3), i, np.uint8) for i in range(len(TRUE))])
    predictions = make_predictions(NAMES, TRUE, probabilities, images)
    assert predictions.thumbnails.shape == (3, 128, 128, 3)  # shrunk to at most 128 px
    assert predictions.thumbnails[0].mean() == 5  # the image of position 5
    first = mistakes_of(predictions)[0]
    assert (first.true_name, first.predicted_name, first.probability) == ("김치찌개", "비빔밥", pytest.approx(0.95))


def test_predictions_survive_a_save_and_load(tmp_path):
    probabilities = probabilities_for(PREDICTED, np.full(len(TRUE), 0.8))
    predictions = make_predictions(NAMES, TRUE, probabilities, np.zeros((len(TRUE), 32, 32, 3), np.uint8))
    save_predictions(predictions, tmp_path / "p.npz")
    loaded = load_predictions(tmp_path / "p.npz")
    assert loaded.class_names == NAMES
    assert np.array_equal(loaded.predicted, PREDICTED) and np.array_equal(loaded.true, TRUE)
    assert load_predictions(tmp_path / "missing.npz") is None


def test_the_section_has_the_table_pairs_and_figures(tmp_path):
    from study.report.failure_section import failure_section

    probabilities = probabilities_for(PREDICTED, np.full(len(TRUE), 0.8))
    predictions = make_predictions(NAMES, TRUE, probabilities, np.zeros((len(TRUE), 32, 32, 3), np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lines = failure_section(predictions, tmp_path / "figures", tmp_path, "the test split")
    text = "\n".join(lines)
    assert "accuracy 66.67%, 3 mistakes in 9 images" in text
    # weakest first: kimchi stew (F1 0.4), then bibimbap (0.667), then pizza (1.0)
    rows = [line for line in lines if line.startswith("| ") and "%" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| 김치찌개", "| 비빔밥", "| pizza"]
    assert "| 김치찌개 | 3 | 50.0% | 33.3% | 40.0% | 비빔밥 (2) |" in text
    assert "- **김치찌개** taken for **비빔밥**: 2 of 3 images (66.7%)." in text
    for name in ("confusion_matrix.png", "confident_mistakes.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
        assert f"(figures/{name})" in text
    assert not [w for w in caught if "Glyph" in str(w.message)]


def glyph_warnings(families: list[str] | None) -> list[str]:
    import matplotlib.pyplot as plt

    from study.figures import plots

    context = plots.fonts_for(NAMES) if families is None else plt.rc_context({"font.family": families})
    with warnings.catch_warnings(record=True) as caught, context:
        warnings.simplefilter("always")
        figure, axis = plt.subplots()
        axis.set_xticks(range(3), NAMES)
        figure.canvas.draw()
        plt.close(figure)
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def test_hangul_class_names_render_without_missing_glyphs():
    assert glyph_warnings(["DejaVu Sans"]), "the control: the default font lacks Hangul"
    assert glyph_warnings(None) == []


def test_fonts_are_added_only_when_the_default_lacks_characters():
    from study.figures.fonts import font_families_for

    assert font_families_for(["pizza", "crème brûlée"]) == ["DejaVu Sans"]
    families = font_families_for(["떡볶이"])
    assert families[0] == "DejaVu Sans" and len(families) == 2


@pytest.mark.slow
def test_the_demo_learns_its_images_and_writes_the_report(demo_run):
    """`python -m study demo` end to end: the seven, searched trials, >= 0.90, a report."""
    import optuna

    from study.store.record import TrialKey

    demo = demo_run.result
    assert "SYNTHETIC images" in demo.stdout and "optuna-dashboard sqlite:///" in demo.stdout
    study = optuna.load_study(study_name="demo", storage=demo_run.storage)
    assert len(study.trials) == 11 and sum(TrialKey.SEED_NAME in t.user_attrs for t in study.trials) == 7
    assert study.best_value >= 0.90
    number, value = re.search(r"^best: trial (\d+), validation accuracy ([0-9.]+)", demo.stdout, re.M).groups()
    assert value == f"{study.best_value:.4f}" == f"{study.trials[int(number)].value:.4f}"
    assert all(TrialKey.EPOCH_SECONDS in t.user_attrs for t in study.trials)
    readme = demo_run.folder / "reports" / "demo" / "README.md"
    assert f"report: {readme}" in demo.stdout
    assert "## Where the best model fails" in readme.read_text(encoding="utf-8")


def test_without_images_the_mistakes_are_a_table_and_no_thumbnail_is_drawn(tmp_path):
    from study.report.failure_section import failure_section

    probabilities = probabilities_for(PREDICTED, np.full(len(TRUE), 0.8))
    predictions = make_predictions(NAMES, TRUE, probabilities, np.zeros((len(TRUE), 32, 32, 3), np.uint8))
    text = "\n".join(failure_section(predictions, tmp_path / "figures", tmp_path, "x", show_images=False))
    assert "| 김치찌개 | 비빔밥 | 0.80 |" in text and "confident_mistakes.png" not in text
    assert not (tmp_path / "figures" / "confident_mistakes.png").exists()
    assert (tmp_path / "figures" / "confusion_matrix.png").exists()
