"""Search-space files: the shipped spaces, their errors, and sampling through Optuna."""

from __future__ import annotations

import optuna
import pytest

from study.errors import SearchSpaceError
from study.space.spec import apply_run_flags, load_space, parse_space, seed_trial_params, suggest

PUBLISHED = {  # name: (head_depth, dense_units, learning_rate, accuracy, time_ms)
    "mn_resultset1": (3, 1024, 2e-5, 0.9488, 26376814),
    "mn_resultset2": (3, 2048, 2e-5, 0.9520, 25686338),
    "mn_resultset3": (3, 4096, 2e-5, 0.9523, 25535377),
    "mn_resultset4": (2, 1024, 2e-5, 0.9520, 20395924),
    "mn_resultset5": (4, 1024, 2e-5, 0.9365, 20511320),
    "mn_resultset6": (3, 1024, 5e-5, 0.9537, 23425362),
    "mn_resultset7": (3, 1024, 2e-4, 0.9654, 28082135),
}

VALID = """
n_trials = 4
[params.head_depth]
role = "scientific"
low = 1
high = 3
[params.dense_units]
role = "scientific"
low = 16
high = 64
log = true
[params.learning_rate]
role = "scientific"
choices = [1e-3, 1e-2]
[params.dropout]
role = "fixed"
value = 0.5
[[seeds]]
name = "first"
head_depth = 2
dense_units = 32
learning_rate = 1e-3
"""


@pytest.mark.parametrize("name", ["seed", "default", "mobile"])
def test_shipped_spaces_hold_the_seven_with_published_numbers(name):
    space = load_space(name)
    found = {s.name: (s.params["head_depth"], s.params["dense_units"], s.params["learning_rate"],
                      s.published_accuracy, s.published_time_ms) for s in space.seeds}
    assert found == PUBLISHED
    assert all(s.params["dropout"] == 0.5 for s in space.seeds)


def test_seed_space_runs_exactly_the_seven_and_documents_the_4098_typo():
    space = load_space("seed")
    assert space.n_trials == 7
    assert "4098" in space.text


def test_default_space_has_the_declared_ranges():
    space = load_space("default")
    ranges = {p.name: (p.role, p.low, p.high, p.log) for p in space.parameters}
    assert ranges == {
        "head_depth": ("scientific", 1, 5, False),
        "dense_units": ("scientific", 64, 4096, True),
        "learning_rate": ("scientific", 1e-5, 1e-3, True),
        "dropout": ("nuisance", 0.0, 0.6, False),
    }


@pytest.mark.parametrize("change, expected", [
    (("[params.dropout]", "[params.dropout]\ncolour = 1"), "space.toml: params.dropout.colour: unknown key"),
    (("high = 3", "high = \"three\""), "params.head_depth.high: expected an integer, got 'three'"),
    (("high = 3", "high = 1"), "params.head_depth.high: empty range"),
    (("dense_units = 32", "dense_units = 128"), "seeds.first.dense_units: 128 is outside the space (16..64 (log))"),
    (("learning_rate = 1e-3\n", "learning_rate = 5e-3\n"), "seeds.first.learning_rate: 0.005 is outside"),
    (("n_trials = 4", "n_trials = 4\nbudget = 3"), "space.toml: budget: unknown key"),
    (("[params.head_depth]", "[params.depth]\nrole = \"fixed\"\nvalue = 1\n[params.head_depth]"),
     "params.depth: unknown hyperparameter"),
    (("role = \"fixed\"", "role = \"constant\""), "params.dropout.role: expected one of scientific, nuisance, fixed"),
    (("n_trials = 4", "n_trials = 4 4"), "space.toml: not valid TOML"),
])
def test_bad_space_files_name_file_key_and_value(change, expected):
    text = VALID.replace(*change, 1)
    with pytest.raises(SearchSpaceError) as error:
        parse_space(text, "space.toml")
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_a_missing_hyperparameter_is_named():
    text = VALID.replace("[params.dropout]\nrole = \"fixed\"\nvalue = 0.5\n", "")
    with pytest.raises(SearchSpaceError, match="params.dropout: missing"):
        parse_space(text, "space.toml")


def test_unknown_space_name_lists_the_known_ones():
    with pytest.raises(SearchSpaceError, match="default, demo, mobile, recipe, seed"):
        load_space("nonexistent")


def test_suggest_samples_within_ranges_and_keeps_fixed_values_out_of_the_trial():
    space = parse_space(VALID, "space.toml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        params = suggest(trial, space)
        assert 1 <= params["head_depth"] <= 3
        assert 16 <= params["dense_units"] <= 64
        assert params["learning_rate"] in (1e-3, 1e-2)
        assert params["dropout"] == 0.5
        assert set(trial.params) == {"head_depth", "dense_units", "learning_rate"}
        study.tell(trial, 0.0)


def test_enqueued_seed_is_what_suggest_returns():
    space = parse_space(VALID, "space.toml")
    study = optuna.create_study()
    study.enqueue_trial(seed_trial_params(space, space.seeds[0]))
    assert suggest(study.ask(), space) == space.seeds[0].params


def test_fingerprint_ignores_comments_but_not_ranges():
    base = parse_space(VALID, "a.toml").fingerprint()
    assert parse_space("# a comment\n" + VALID, "b.toml").fingerprint() == base
    assert parse_space(VALID.replace("high = 64", "high = 65"), "c.toml").fingerprint() != base


def test_mobile_space_starts_from_the_seven_in_their_own_setting():
    space = load_space("mobile")
    assert {p.name for p in space.varied()} >= {"pooling", "image_size", "unfreeze_blocks", "alpha"}
    for seed in space.seeds:
        assert (seed.params["pooling"], seed.params["image_size"], seed.params["unfreeze_blocks"],
                seed.params["alpha"]) == ("flatten", 224, 13, 1.0)
    for name in ("seed", "default"):  # the original's head stays the default elsewhere
        assert not {"pooling", "image_size", "alpha"} & {p.name for p in load_space(name).parameters}


MOBILE_PARAMS = """
[params.pooling]
role = "scientific"
choices = ["flatten", "avg"]
[params.image_size]
role = "scientific"
choices = [96, 128]
[params.alpha]
role = "fixed"
value = 0.25
[params.unfreeze_blocks]
role = "scientific"
low = 0
high = 13
"""


@pytest.mark.parametrize("change, expected", [
    (('choices = ["flatten", "avg"]', 'choices = ["flatten", "mean"]'),
     "params.pooling.choices: expected one of flatten, avg, max, got 'mean'"),
    (("value = 0.25", "value = 0.3"), "params.alpha.value: expected one of 0.25, 0.5, 0.75, 1.0, got 0.3"),
    (("choices = [96, 128]", "low = 96\nhigh = 128"), "params.image_size: give choices"),
    (("choices = [96, 128]", "choices = [16, 128]"), "params.image_size.choices: expected a value in [32, 1024]"),
    (("high = 13", "high = 14"), "params.unfreeze_blocks.high: expected a value in [0, 13]"),
])
def test_bad_mobilenet_parameters_name_key_and_value(change, expected):
    text = VALID.split("[[seeds]]")[0] + MOBILE_PARAMS.replace(*change, 1)
    with pytest.raises(SearchSpaceError) as error:
        parse_space(text, "space.toml")
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_run_flags_narrow_or_contradict_the_space():
    space = parse_space(VALID.split("[[seeds]]")[0] + MOBILE_PARAMS, "space.toml")
    same, notes = apply_run_flags(space, {"image_size": None, "alpha": None}, "finetune")
    assert same == space and notes == []
    narrowed, notes = apply_run_flags(space, {"image_size": 128, "alpha": 0.25}, "finetune")
    assert narrowed.parameter("image_size").kind == "fixed" and narrowed.parameter("image_size").value == 128
    assert len(notes) == 1 and "--image-size 128: image_size fixed at 128" in notes[0]  # alpha was fixed already
    assert narrowed.fingerprint() != space.fingerprint()
    with pytest.raises(SearchSpaceError, match="params.image_size: --image-size 224 contradicts the space "):
        apply_run_flags(space, {"image_size": 224, "alpha": None}, "finetune")
    with pytest.raises(SearchSpaceError, match="--alpha 0.5 contradicts the space"):
        apply_run_flags(space, {"image_size": None, "alpha": 0.5}, "finetune")
    cached, notes = apply_run_flags(space, {"image_size": None, "alpha": None}, "cached")
    assert cached.parameter("unfreeze_blocks").value == 0 and "trains no base block" in notes[0]
