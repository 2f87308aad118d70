"""The report end to end: a tiny study run, confirmed and reported through the CLI."""

from __future__ import annotations

import re

import optuna
import pytest

from study.report.page import md, write_report
from study.store.storage import resolve_storage
from tests.commands import study_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_markdown_special_characters_in_user_text_are_escaped():
    assert md("a_b*c|d") == r"a\_b\*c\|d"
    assert md("비빔밥 [x](y)") == r"비빔밥 \[x\]\(y\)"


@pytest.mark.slow
def test_run_confirm_report_links_only_valid_pngs(confirmed_study, tmp_path):
    study_folder = confirmed_study.copy_to(tmp_path / "study")
    report = study_cli("report", "--study-name", "tiny_study", "--out", "reports", cwd=study_folder)
    assert report.returncode == 0, report.stderr
    assert "Glyph" not in report.stderr and "missing from" not in report.stderr  # 짜장면 renders

    folder = study_folder / "reports" / "tiny_study"
    text = (folder / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 6
    for link in links:
        assert (folder / link).read_bytes()[:8] == PNG_SIGNATURE, link
    for heading in ("## Summary", "## The seven, reproduced", "## Beyond the seven", "## Where the best model fails",
                    "## Figures",
                    "## Reflection, computed", "## Confirmation", "## Provenance"):
        assert heading in text
    assert r"pizza\|slice" in text and "tiny\\_study" in text
    assert "| **mn\\_resultset1** | 3 | 1024 | 2e-05 | 94.88% |" in text
    assert "Validation mean [95% CI]" in text  # the confirmation table is there
    assert "| Class | Images | Precision | Recall | F1 | Most often mistaken for |" in text
    assert "(figures/confusion_matrix.png)" in text
    lines = (folder / "trials.csv").read_text().splitlines()
    trials = optuna.load_study(study_name="tiny_study", storage=f"sqlite:///{study_folder / 'study.db'}").trials
    assert len(trials) == 8 and len(lines) == 1 + 8 and "user_attrs_history" not in lines[0]


def test_absolute_paths_become_relative_to_the_working_folder(monkeypatch, tmp_path):
    from study.report.page import relative_paths

    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    text = f"--data {tmp_path}/photos sqlite:///{tmp_path}/s.db ![x](figures/a.png) https://optuna.org/a"
    assert relative_paths(text) == "--data ../photos sqlite:///../s.db ![x](figures/a.png) https://optuna.org/a"


def test_a_study_with_only_failed_trials_says_so(tmp_path):
    location = resolve_storage("sqlite:///s.db", tmp_path)
    study = optuna.create_study(study_name="broken", storage=location.url)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"fail_reason": "MemoryError: OOM"}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    readme = write_report(location, "broken", tmp_path / "reports")
    text = readme.read_text()
    assert "0 complete, 1 pruned, 1 failed" in text
    assert "No trial has completed yet" in text and "`MemoryError: OOM`" in text


def test_report_of_an_unknown_study_is_one_line(tmp_path):
    optuna.create_study(study_name="other", storage=f"sqlite:///{tmp_path}/study.db")
    result = study_cli("report", "--study-name", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"study: error: no study 'nope' in 'sqlite:///{tmp_path}/study.db' (studies: other)"


def test_trials_still_improving_at_their_last_epoch_are_flagged_and_counted(tmp_path):
    from optuna.distributions import FloatDistribution, IntDistribution

    location = resolve_storage("sqlite:///s.db", tmp_path)
    study = optuna.create_study(study_name="budget", storage=location.url, direction="maximize")
    distributions = {"head_depth": IntDistribution(1, 5), "dense_units": IntDistribution(64, 4096),
                     "learning_rate": FloatDistribution(1e-5, 1e-3, log=True), "dropout": FloatDistribution(0, 0.6)}
    curves = {"mn_resultset1": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "mn_resultset7": [0.5, 0.7, 0.7, 0.7, 0.7, 0.7],
              None: [0.6, 0.8, 0.8, 0.8, 0.8, 0.8]}
    for name, curve in curves.items():
        history = {"accuracy": curve, "val_accuracy": curve, "loss": [1 - v for v in curve],
                   "val_loss": [1 - v for v in curve]}
        attrs = {"history": history, "test_accuracy": curve[-1]}
        if name:
            attrs["seed_name"] = name
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=max(curve), distributions=distributions, user_attrs=attrs,
            params={"head_depth": 3, "dense_units": 1024, "learning_rate": 2e-5, "dropout": 0.5}))
    text = write_report(location, "budget", tmp_path / "reports").read_text(encoding="utf-8")
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| **mn")}
    assert rows["| **mn\\_resultset1**"].endswith("| complete | **yes** |")
    assert rows["| **mn\\_resultset7**"].endswith("| complete | - |")
    assert "**Still improving at the last epoch**: 1 of the 2 completed seed trials and 0 of the top 1 searched trials" in text
