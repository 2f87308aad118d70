"""The record of stored names: fixed values, and a study written before the record still reads the same.

`legacy_study/` was written by version 41eb4c0 (before the package was split into parts) with
`run --space seed --weights none --alpha 0.25 --image-size 32 --epochs 2 --batch-size 8
--no-augment --objectives accuracy,macs` on three classes of 8 generated images
(`write_class_images(photos, {"짜장면": 8, "pizza": 8, "ramen": 8})`), then `confirm --top 1
--seeds 1 --holdout held-out` (4 images a class, seed 1) and `export-model --format tflite`.
Its models are left out (they are large); `expected-README.md` and `expected-trials.csv` are
that version's `report` of it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna
import pytest

from study.report.page import write_report
from study.space.spec import MOBILENET_PARAMETERS, space_of_study
from study.store import record
from study.store.record import StudyKey, TrialKey
from study.store.storage import resolve_storage
from tests.commands import study_cli
from tests.conftest import write_class_images

LEGACY = Path(__file__).parent / "legacy_study"

# The names studies on disk use. A change here orphans every study written before it.
STORED_NAMES = {
    StudyKey.SPACE_NAME: "space_name", StudyKey.SPACE_FINGERPRINT: "space_fingerprint",
    StudyKey.SPACE_TEXT: "space_text", StudyKey.DATA_DIR: "data_dir", StudyKey.DATA_FINGERPRINT: "data_fingerprint",
    StudyKey.CLASS_NAMES: "class_names", StudyKey.SPLIT_COUNTS: "split_counts", StudyKey.SPLIT_SEED: "split_seed",
    StudyKey.SPLIT: "split", StudyKey.SKIPPED_IMAGES: "skipped_images", StudyKey.TRAIN: "train",
    StudyKey.OBJECTIVES: "objectives", StudyKey.COMMAND_LINES: "command_lines", StudyKey.EXPORTS: "exports",
    StudyKey.EXPLICIT_FLAGS: "explicit_flags", StudyKey.ENGINE: "engine",
    TrialKey.SEED_NAME: "seed_name", TrialKey.TEST_ACCURACY: "test_accuracy", TrialKey.HISTORY: "history",
    TrialKey.EPOCH_SECONDS: "epoch_seconds", TrialKey.EPOCHS_RUN: "epochs_run", TrialKey.BEST_EPOCH: "best_epoch",
    TrialKey.FAIL_REASON: "fail_reason", TrialKey.CONFIRM_OF: "confirm_of", TrialKey.CONFIRM_SEED: "confirm_seed",
    TrialKey.HOLDOUT_CORRECT: "holdout_correct", TrialKey.STAGE1_TRIAL: "stage1_trial",
    record.CONFIRM_SUFFIX: "-confirm", record.STAGE2_SUFFIX: "-stage2", record.KERAS_TUNER_SUFFIX: "-keras-tuner",
    record.ARTIFACT_DIR_NAME: "artifacts", record.BEST_MODEL_SUFFIX: ".best.keras",
    record.PREDICTIONS_SUFFIX: ".predictions.npz", record.FRONT_DIR_SUFFIX: ".front",
}


def record_names() -> set[str]:
    names = set(record.COST_KEYS) | {record.FIXED_PARAMS_SYSTEM_KEY}
    for holder in (StudyKey, TrialKey):
        names |= {value for key, value in vars(holder).items() if key.isupper()}
    return names


def without_date(readme: Path) -> str:
    """The report's text without the minute it was written, and without the paragraphs that
    later versions added (the settings that won each objective, under the importances)."""
    text = re.sub(r"- Report written: .* UTC", "- Report written: (date)", readme.read_text(encoding="utf-8"))
    return re.sub(r"Importance for .*?\n\n", "", text, flags=re.S)


@pytest.fixture
def legacy_folder(tmp_path) -> Path:
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    return folder


def test_the_stored_names_are_the_ones_on_disk():
    for constant, stored in STORED_NAMES.items():
        assert constant == stored


def test_every_attribute_of_a_study_written_before_is_named_by_the_record(legacy_folder):
    storage = f"sqlite:///{legacy_folder / 'study.db'}"
    names = record_names()
    for study_name in ("legacy", record.confirm_study_name("legacy")):
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert set(study.user_attrs) <= names
        for trial in study.trials:
            # Fixed parameters are stored under their own names (the space's, not the record's).
            unnamed = set(trial.user_attrs) - names - set(MOBILENET_PARAMETERS) - {"dropout"}
            assert not unnamed, unnamed
            assert set(trial.system_attrs) - {record.FIXED_PARAMS_SYSTEM_KEY} <= \
                {k for k in trial.system_attrs if k.startswith("artifacts:")}


def test_a_study_written_before_reads_through_the_record(legacy_folder):
    storage = f"sqlite:///{legacy_folder / 'study.db'}"
    study = optuna.load_study(study_name="legacy", storage=storage)
    seeds = sorted(record.label_of(t) for t in study.trials if record.is_seed(t))
    assert seeds == [f"mn_resultset{k}" for k in range(1, 8)]
    best = record.best_by_accuracy(study.trials)
    assert best.number == 0 and record.accuracy(best) == pytest.approx(1 / 3)
    assert record.param_value(best, "dropout") == 0.5  # fixed by the seed space, stored as a user attr
    assert space_of_study(study.user_attrs).name == "seed"
    assert record.export_key(0, "tflite", "none") in study.user_attrs[StudyKey.EXPORTS]
    assert record.predictions_path(legacy_folder / "legacy.best.keras").is_file()


def test_a_study_written_before_reports_exactly_as_before(legacy_folder, monkeypatch):
    monkeypatch.chdir(legacy_folder)  # the report writes paths relative to the working folder
    readme = write_report(resolve_storage(None, legacy_folder), "legacy", legacy_folder / "reports")
    assert without_date(readme) == without_date(LEGACY / "expected-README.md")
    assert ("Importance for validation accuracy: `dense_units` 0.33, `head_depth` 0.33, `learning_rate` 0.33."
            in readme.read_text(encoding="utf-8"))  # ties in name order, the same in every process
    trials_csv = readme.parent / "trials.csv"
    assert trials_csv.read_text(encoding="utf-8") == (LEGACY / "expected-trials.csv").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_study_written_before_exports_its_best_model(legacy_folder):
    # Its photos moved: regenerate them (same files, same fingerprint) and say where they are now.
    photos = write_class_images(legacy_folder / "photos", {"짜장면": 8, "pizza": 8, "ramen": 8})
    study = optuna.load_study(study_name="legacy", storage=f"sqlite:///{legacy_folder / 'study.db'}")
    study.set_user_attr(StudyKey.DATA_DIR, str(photos))
    result = study_cli("export-model", "--study-name", "legacy", "--format", "keras", "--out", "best.keras",
                       cwd=legacy_folder)
    assert result.returncode == 0, result.stderr
    assert "retrained" in result.stdout or "trial 0" in result.stdout
    assert (legacy_folder / "best.keras").stat().st_size > 0
