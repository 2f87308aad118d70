"""The training recipe in space files: the shipped recipe space, bad values, seeds, modes and flags."""

from __future__ import annotations

import pytest

from study.errors import SearchSpaceError
from study.space.spec import SEVEN_SETTINGS, apply_run_flags, check_recipe_fits, load_space, parse_space
from tests.commands import study_cli
from tests.conftest import SMALL_SPACE, write_class_images

HEAD = "n_trials = 4\n" + SMALL_SPACE
SEED = """
[[seeds]]
name = "first"
head_depth = 2
dense_units = 16
learning_rate = 1e-3
"""


def space_with(recipe: str, seed: str = SEED):
    return parse_space(HEAD + recipe + seed, "space.toml")


def test_the_recipe_space_starts_from_the_seven_with_their_own_recipe():
    space = load_space("recipe")
    assert len(space.seeds) == 7
    for seed in space.seeds:
        for name in ("label_smoothing", "weight_decay", "lr_schedule", "warmup_epochs", "augment_strength",
                     "batch_size", "head_warmup_epochs", "finetune_lr_ratio", "pooling"):
            assert seed.params[name] == SEVEN_SETTINGS[name], (seed.name, name)
    varied = {p.name for p in space.varied()}
    assert {"lr_schedule", "head_warmup_epochs", "finetune_lr_ratio", "label_smoothing", "weight_decay",
            "augment_strength", "batch_size", "warmup_epochs", "pooling"} <= varied
    assert "image_size" not in varied and "alpha" not in varied  # they stay with the flags


@pytest.mark.parametrize("recipe, expected", [
    ('[params.label_smoothing]\nrole = "fixed"\nvalue = -0.1\n',
     "space.toml: params.label_smoothing.value: expected a smoothing in [0, 1), got -0.1"),
    ('[params.label_smoothing]\nrole = "nuisance"\nlow = 0.0\nhigh = 1.0\n',
     "params.label_smoothing.high: expected a smoothing in [0, 1), got 1.0"),
    ('[params.lr_schedule]\nrole = "scientific"\nchoices = ["constant", "step"]\n',
     "params.lr_schedule.choices: expected one of constant, cosine, got 'step'"),
    ('[params.lr_schedule]\nrole = "scientific"\nlow = 0\nhigh = 1\n', "params.lr_schedule: give choices"),
    ('[params.finetune_lr_ratio]\nrole = "fixed"\nvalue = 0\n',
     "params.finetune_lr_ratio.value: expected a ratio in (0, 1], got 0"),
    ('[params.finetune_lr_ratio]\nrole = "nuisance"\nlow = 0.1\nhigh = 1.5\n',
     "params.finetune_lr_ratio.high: expected a ratio in (0, 1], got 1.5"),
    ('[params.batch_size]\nrole = "nuisance"\nchoices = [0, 32]\n',
     "params.batch_size.choices: expected a batch size of at least 1, got 0"),
    ('[params.weight_decay]\nrole = "nuisance"\nlow = -1e-4\nhigh = 1e-3\n',
     "params.weight_decay.low: expected a decay in [0, 1], got -0.0001"),
    ('[params.warmup_epochs]\nrole = "nuisance"\nlow = 0\nhigh = 1.5\n',
     "params.warmup_epochs.high: expected an integer, got 1.5"),
])
def test_bad_recipe_values_name_file_key_value_and_what_is_expected(recipe, expected):
    with pytest.raises(SearchSpaceError, match=expected.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        space_with(recipe)


def test_a_warm_up_that_does_not_fit_the_epochs_is_refused():
    space = space_with('[params.warmup_epochs]\nrole = "nuisance"\nlow = 0\nhigh = 3\n'
                       '[params.head_warmup_epochs]\nrole = "scientific"\nchoices = [0, 1]\n')
    check_recipe_fits(space, 4)
    with pytest.raises(SearchSpaceError, match="params.warmup_epochs: 3 warm-up epochs do not fit an epoch budget "
                                               "of 3"):
        check_recipe_fits(space, 3)
    with pytest.raises(SearchSpaceError, match="params.head_warmup_epochs: 1 warm-up epochs"):
        check_recipe_fits(space_with('[params.head_warmup_epochs]\nrole = "fixed"\nvalue = 1\n'), 1)


def test_a_seed_runs_with_the_seven_s_recipe_which_the_space_must_hold():
    space = space_with('[params.lr_schedule]\nrole = "scientific"\nchoices = ["constant", "cosine"]\n'
                       '[params.label_smoothing]\nrole = "nuisance"\nlow = 0.0\nhigh = 0.2\n')
    assert space.seeds[0].params["lr_schedule"] == "constant"
    assert space.seeds[0].params["label_smoothing"] == 0.0
    own = space_with('[params.lr_schedule]\nrole = "scientific"\nchoices = ["constant", "cosine"]\n',
                     SEED + 'lr_schedule = "cosine"\n')
    assert own.seeds[0].params["lr_schedule"] == "cosine"  # a seed may give its own
    with pytest.raises(SearchSpaceError, match="seeds.first.batch_size: the seven's value 32 is outside the space"):
        space_with('[params.batch_size]\nrole = "nuisance"\nchoices = [16, 64]\n')


def test_modes_fix_the_keys_that_cannot_act_there_with_a_note():
    space = space_with('[params.head_warmup_epochs]\nrole = "scientific"\nlow = 0\nhigh = 2\n'
                       '[params.finetune_lr_ratio]\nrole = "scientific"\nlow = 0.1\nhigh = 1.0\n'
                       '[params.augment_strength]\nrole = "nuisance"\nlow = 0.0\nhigh = 2.0\n')
    kept, notes = apply_run_flags(space, {}, "finetune")
    assert kept == space and notes == []
    frozen, notes = apply_run_flags(space, {}, "frozen")
    assert frozen.parameter("head_warmup_epochs").value == 0 and frozen.parameter("finetune_lr_ratio").value == 1.0
    assert frozen.parameter("augment_strength").kind != "fixed"  # frozen mode still augments its images
    assert notes == ["mode frozen trains no base: head_warmup_epochs fixed at 0 for this run",
                     "mode frozen trains no base: finetune_lr_ratio fixed at 1 for this run"]
    cached, notes = apply_run_flags(space, {"augment_strength": 0.5}, "cached")
    assert cached.parameter("augment_strength").value == 0.5
    assert "mode cached trains on cached features: augment_strength fixed at 0.5 for this run" in notes


def test_the_batch_size_and_augmentation_flags_narrow_or_contradict_the_space():
    space = space_with('[params.batch_size]\nrole = "nuisance"\nchoices = [16, 32, 64]\n'
                       '[params.augment_strength]\nrole = "nuisance"\nlow = 0.0\nhigh = 2.0\n')
    narrowed, notes = apply_run_flags(space, {"batch_size": 64, "augment_strength": 0.5}, "finetune")
    assert narrowed.parameter("batch_size").value == 64 and narrowed.seeds[0].params["batch_size"] == 64
    assert narrowed.parameter("augment_strength").value == 0.5
    assert any(note.startswith("--batch-size 64: batch_size fixed at 64") for note in notes)
    with pytest.raises(SearchSpaceError, match=r"params.batch_size: --batch-size 8 contradicts the space \(\{16, 32, "
                                               r"64\}\)"):
        apply_run_flags(space, {"batch_size": 8}, "finetune")


def test_a_bad_recipe_is_refused_before_any_trial_with_one_line_and_exit_2(tmp_path):
    images = write_class_images(tmp_path / "images", {"a": 4, "b": 4})
    (tmp_path / "space.toml").write_text(HEAD + '[params.warmup_epochs]\nrole = "nuisance"\nlow = 0\nhigh = 4\n'
                                         + SEED, encoding="utf-8")
    result = study_cli("run", "--data", str(images), "--space", "space.toml", "--epochs", "3", "--weights", "none",
                       cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "study: error: space.toml: params.warmup_epochs: 4 warm-up epochs do not fit an epoch budget of 3 "
        "(expected fewer warm-up epochs than --epochs)"]
    assert not (tmp_path / "study.db").exists()
    patience = study_cli("run", "--data", str(images), "--epochs", "3", "--patience", "3", cwd=tmp_path)
    assert patience.returncode == 2
    assert "--patience 3 must be below --epochs 3" in patience.stderr
