"""Search-space files: the shipped spaces, their errors, and sampling through Optuna."""

from __future__ import annotations

import optuna
import pytest

from study.errors import SearchSpaceError
from study.search_space import load_space, parse_space, seed_trial_params, suggest

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


@pytest.mark.parametrize("name", ["seed", "default"])
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
    with pytest.raises(SearchSpaceError, match="default, demo, seed"):
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
