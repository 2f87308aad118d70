"""`confirm --holdout --epochs --patience` end to end on tiny data (the shared confirmed study), and its bad input."""

from __future__ import annotations

import shutil

import optuna
import pytest

from tests.commands import study_cli


@pytest.mark.slow
def test_confirm_on_a_held_out_folder_then_the_paired_report(confirmed_study, tmp_path):
    confirm = confirmed_study.confirm
    assert "holdout: held - 12 images of 2 classes" in confirm.stdout
    folder = confirmed_study.copy_to(tmp_path / "study")
    storage = f"sqlite:///{folder / 'study.db'}"
    runs = optuna.load_study(study_name="tiny_study-confirm", storage=storage).trials
    assert len(runs) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in runs)
    for run_trial in runs:
        a = run_trial.user_attrs
        assert len(a["holdout_correct"]) == 12 and set(a["holdout_correct"]) <= {0, 1}
        assert a["holdout_accuracy"] == pytest.approx(sum(a["holdout_correct"]) / 12)
        assert (a["confirm_epochs"], a["confirm_patience"]) == (4, 1)
        curve = a["history"]["val_accuracy"]
        best = curve.index(max(curve))
        assert len(curve) == min(4, best + 2)  # patience 1: one epoch without a better one, then stop

    # Bad held-out folders: one line each, exit 2, nothing trained or recorded.
    first, _ = confirmed_study.CLASSES
    shutil.copytree(folder / "held" / first, folder / "unknown" / "cherry")
    (folder / "empty" / first).mkdir(parents=True)
    (folder / "copied" / first).mkdir(parents=True)
    shutil.copy(next((folder / "images" / first).iterdir()), folder / "copied" / first / "renamed.png")
    for bad_folder, message in (("unknown", "class folder 'cherry' in 'unknown' is not a class of the model"),
                                ("empty", "--holdout folder 'empty' has no readable images"),
                                ("copied", "is a copy of"), ("missing", "--holdout folder 'missing' does not exist")):
        bad = study_cli("confirm", "--study-name", "tiny_study", "--holdout", bad_folder, cwd=folder)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    assert len(optuna.load_study(study_name="tiny_study-confirm", storage=storage).trials) == 4

    # The same command again has nothing to do; another budget is a new set of runs.
    again = study_cli(*confirmed_study.CONFIRM, cwd=folder)
    assert "0 run(s) to do" in again.stdout

    report = study_cli("report", "--study-name", "tiny_study", cwd=folder)
    assert report.returncode == 0, report.stderr
    text = (folder / "reports" / "tiny_study" / "README.md").read_text(encoding="utf-8")
    assert "Held-out mean [95% CI]" in text
    assert "- **On held-out photos**: trial" in text and "McNemar's exact test p = " in text
    assert "up to 4 epochs, stopped after 1 without a better validation accuracy" in text
