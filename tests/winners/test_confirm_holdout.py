"""`confirm --holdout --epochs --patience` end to end on tiny data, and its bad input."""

from __future__ import annotations

import shutil

import optuna
import pytest

from tests.commands import study_cli
from tests.conftest import write_class_images

TINY = ["--weights", "none", "--alpha", "0.25", "--image-size", "32", "--batch-size", "8", "--no-augment"]


@pytest.mark.slow
def test_confirm_on_a_held_out_folder_then_the_paired_report(tmp_path):
    images = write_class_images(tmp_path / "images", {"apple": 8, "banana": 8}, seed=1)
    held = write_class_images(tmp_path / "held", {"apple": 6, "banana": 6}, seed=2)
    run = study_cli("run", "--data", str(images), "--study-name", "s", "--space", "default", "--n-trials", "8",
                    "--epochs", "2", *TINY, cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    # Bad held-out folders: one line each, exit 2, nothing trained.
    shutil.copytree(held / "apple", tmp_path / "unknown" / "cherry")
    (tmp_path / "empty" / "apple").mkdir(parents=True)
    (tmp_path / "copied" / "apple").mkdir(parents=True)
    shutil.copy(next((images / "apple").iterdir()), tmp_path / "copied" / "apple" / "renamed.png")
    for folder, message in (("unknown", "class folder 'cherry' in 'unknown' is not a class of the model"),
                            ("empty", "--holdout folder 'empty' has no readable images"),
                            ("copied", "is a copy of"), ("missing", "--holdout folder 'missing' does not exist")):
        bad = study_cli("confirm", "--study-name", "s", "--holdout", folder, cwd=tmp_path)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert "s-confirm" not in optuna.get_all_study_names(storage)

    confirm = study_cli("confirm", "--study-name", "s", "--top", "1", "--seeds", "2", "--epochs", "4",
                        "--patience", "1", "--holdout", "held", cwd=tmp_path)
    assert confirm.returncode == 0, confirm.stderr
    assert "holdout: held - 12 images of 2 classes" in confirm.stdout
    runs = optuna.load_study(study_name="s-confirm", storage=storage).trials
    assert len(runs) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in runs)
    for run_trial in runs:
        a = run_trial.user_attrs
        assert len(a["holdout_correct"]) == 12 and set(a["holdout_correct"]) <= {0, 1}
        assert a["holdout_accuracy"] == pytest.approx(sum(a["holdout_correct"]) / 12)
        assert (a["confirm_epochs"], a["confirm_patience"]) == (4, 1)
        curve = a["history"]["val_accuracy"]
        best = curve.index(max(curve))
        assert len(curve) == min(4, best + 2)  # patience 1: one epoch without a better one, then stop

    # The same command again has nothing to do; another budget is a new set of runs.
    again = study_cli("confirm", "--study-name", "s", "--top", "1", "--seeds", "2", "--epochs", "4",
                      "--patience", "1", "--holdout", "held", cwd=tmp_path)
    assert "0 run(s) to do" in again.stdout

    report = study_cli("report", "--study-name", "s", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "reports" / "s" / "README.md").read_text(encoding="utf-8")
    assert "Held-out mean [95% CI]" in text
    assert "- **On held-out photos**: trial" in text and "McNemar's exact test p = " in text
    assert "up to 4 epochs, stopped after 1 without a better validation accuracy" in text
