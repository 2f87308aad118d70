"""Search spaces: `search_spaces/*.toml` -> typed specs, and the one caller of `trial.suggest_*`.

A space file declares each hyperparameter of the head as *scientific* (what the study is
about), *nuisance* (tuned so the comparison is fair) or *fixed*, with a range or choices,
and lists the seed configurations (the original project's seven) that every study of the
space runs first. See `search_spaces/default.toml` for the format.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.errors import SearchSpaceError
from study.store.record import StudyKey

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"  # beside the package

# The hyperparameters a space may declare, the Python type of their values, and the values
# the model builder can take. The four head parameters are required; MobileNet's own
# trade-offs are optional and default to the run's settings (--image-size, --alpha) or to
# the original (flatten, the whole base fine-tuned).
PARAMETER_KINDS: dict[str, type] = {
    "head_depth": int,
    "dense_units": int,
    "learning_rate": float,
    "dropout": float,
    "pooling": str,
    "image_size": int,
    "unfreeze_blocks": int,
    "alpha": float,
    "label_smoothing": float,
    "weight_decay": float,
    "lr_schedule": str,
    "warmup_epochs": int,
    "augment_strength": float,
    "batch_size": int,
    "head_warmup_epochs": int,
    "finetune_lr_ratio": float,
}
REQUIRED_PARAMETERS = ("head_depth", "dense_units", "learning_rate", "dropout")
MOBILENET_PARAMETERS = ("pooling", "image_size", "unfreeze_blocks", "alpha")
# The training recipe, each optional; left out, a trial trains as the seven did.
RECIPE_PARAMETERS = ("label_smoothing", "weight_decay", "lr_schedule", "warmup_epochs", "augment_strength",
                     "batch_size", "head_warmup_epochs", "finetune_lr_ratio")
# The seven's value of each optional key: a seed that does not give one runs with it, so the
# seven stay the reproduction (Flatten, the whole base trained, Adam at a constant rate, ...).
SEVEN_SETTINGS = {"pooling": "flatten", "unfreeze_blocks": 13, "label_smoothing": 0.0, "weight_decay": 0.0,
                  "lr_schedule": "constant", "warmup_epochs": 0, "augment_strength": 1.0, "batch_size": 32,
                  "head_warmup_epochs": 0, "finetune_lr_ratio": 1.0}
# Keys that need a base that trains (finetune mode), and what they are fixed at without one.
BASE_TRAINING_PARAMETERS = {"head_warmup_epochs": 0, "finetune_lr_ratio": 1.0}
PARAMETER_BOUNDS: dict[str, tuple[float, float]] = {
    "head_depth": (0, 64),
    "dense_units": (1, 1 << 20),
    "learning_rate": (1e-12, 10.0),
    "dropout": (0.0, 0.99),
    "image_size": (32, 1024),
    "unfreeze_blocks": (0, 13),
    "alpha": (0.25, 1.0),
    "label_smoothing": (0.0, 0.999),
    "weight_decay": (0.0, 1.0),
    "warmup_epochs": (0, 10_000),
    "augment_strength": (0.0, 10.0),
    "batch_size": (1, 1 << 16),
    "head_warmup_epochs": (0, 10_000),
    "finetune_lr_ratio": (1e-6, 1.0),
}
# How a bound is said where "a value in [low, high]" would mislead (an open end).
EXPECTED_VALUES = {"label_smoothing": "a smoothing in [0, 1)", "finetune_lr_ratio": "a ratio in (0, 1]",
                   "batch_size": "a batch size of at least 1", "weight_decay": "a decay in [0, 1]",
                   "warmup_epochs": "0 or more epochs", "head_warmup_epochs": "0 or more epochs",
                   "augment_strength": "a strength in [0, 10]"}
# Values outside a range: pooling and alpha are names of finite sets; image sizes are choices
# because each one needs its own decoded images (and, in cached mode, its own features).
ALLOWED_VALUES: dict[str, tuple] = {"pooling": ("flatten", "avg", "max"), "alpha": (0.25, 0.5, 0.75, 1.0),
                                   "lr_schedule": ("constant", "cosine")}
CHOICES_ONLY = ("pooling", "image_size", "alpha", "lr_schedule")
ROLES = ("scientific", "nuisance", "fixed")
PARAM_KEYS = {"role", "type", "low", "high", "log", "step", "choices", "value", "note"}
TOP_KEYS = {"description", "n_trials", "params", "seeds"}
SEED_INFO_KEYS = {"name", "published_accuracy", "published_time_ms", "note"}


@dataclass(frozen=True)
class ParameterSpec:
    """One hyperparameter: its role and either a range, choices or a fixed value."""

    name: str
    role: str
    kind: str  # "int", "float", "categorical" or "fixed"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None

    def contains(self, value: Any) -> bool:
        """Whether `value` is a value this parameter can take."""
        if self.kind == "fixed":
            return value == self.value
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            steps = (value - self.low) / self.step
            return math.isclose(steps, round(steps), abs_tol=1e-9)
        return True

    def describe(self) -> str:
        """A short text of the range, e.g. `64..4096 (log)` or `{2, 3, 4}`."""
        if self.kind == "fixed":
            return f"= {self.value}"
        if self.kind == "categorical":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        text = f"{self.low:g}..{self.high:g}"
        if self.log:
            text += " (log)"
        if self.step is not None:
            text += f" step {self.step:g}"
        return text


@dataclass(frozen=True)
class SeedConfig:
    """A configuration every study of the space runs first, with its published numbers."""

    name: str
    params: dict[str, Any]
    published_accuracy: float | None = None  # fraction, 0.9488 for 94.88%
    published_time_ms: float | None = None
    note: str = ""


@dataclass(frozen=True)
class SearchSpace:
    """A parsed space file."""

    path: Path
    description: str
    parameters: tuple[ParameterSpec, ...]
    seeds: tuple[SeedConfig, ...]
    n_trials: int
    text: str  # the file as written, for the report's provenance

    @property
    def name(self) -> str:
        return self.path.stem

    def parameter(self, name: str) -> ParameterSpec:
        return next(p for p in self.parameters if p.name == name)

    def varied(self) -> tuple[ParameterSpec, ...]:
        """The parameters that trials sample (all but the fixed ones)."""
        return tuple(p for p in self.parameters if p.kind != "fixed")

    def fingerprint(self) -> str:
        """A hash of what the space means (ranges and seeds), not of its comments."""
        payload = {
            "parameters": [
                [p.name, p.role, p.kind, p.low, p.high, p.log, p.step, list(p.choices), p.value]
                for p in self.parameters
            ],
            "seeds": [[s.name, sorted(s.params.items())] for s in self.seeds],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def resolve_space_path(space: str) -> Path:
    """Map `default`, `seed` or a file path to a space file path."""
    if space.endswith(".toml") or "/" in space or "\\" in space:
        path = Path(space)
    else:
        path = SPACES_DIR / f"{space}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.toml")))
        raise SearchSpaceError(
            f"{path}: search space not found (expected one of: {known}, or a path to a .toml file)"
        )
    return path


def load_space(space: str) -> SearchSpace:
    """Read and check a space file given by name or path."""
    path = resolve_space_path(space)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SearchSpaceError(f"{path}: cannot read the file ({error})") from None
    return parse_space(text, path)


def parse_space(text: str, path: Path | str = "<space>") -> SearchSpace:
    """Parse the TOML text of a space file; raise SearchSpaceError naming file, key and value."""
    path = Path(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SearchSpaceError(f"{path}: not valid TOML ({error})") from None

    def fail(key: str, message: str) -> SearchSpaceError:
        return SearchSpaceError(f"{path}: {key}: {message}")

    for key in document:
        if key not in TOP_KEYS:
            raise fail(key, f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise fail("description", f"expected a string, got {description!r}")

    declared = document.get("params")
    if not isinstance(declared, dict):
        raise fail("params", "missing table: declare [params.<name>] for each hyperparameter")
    parameters = []
    for name, table in declared.items():
        parameters.append(_parse_parameter(name, table, fail))
    missing = [name for name in REQUIRED_PARAMETERS if name not in declared]
    if missing:
        raise fail(f"params.{missing[0]}", "missing: every space declares "
                   + ", ".join(REQUIRED_PARAMETERS) + " (use role = \"fixed\" to pin one)")
    parameters.sort(key=lambda p: list(PARAMETER_KINDS).index(p.name))

    seeds = _parse_seeds(document.get("seeds", []), parameters, fail)
    n_trials = document.get("n_trials", max(len(seeds), 1))
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise fail("n_trials", f"expected a positive integer, got {n_trials!r}")
    return SearchSpace(path, description, tuple(parameters), seeds, n_trials, text)


def _parse_parameter(name: str, table: Any, fail) -> ParameterSpec:
    key = f"params.{name}"
    if name not in PARAMETER_KINDS:
        raise fail(key, f"unknown hyperparameter (expected one of: {', '.join(PARAMETER_KINDS)})")
    if not isinstance(table, dict):
        raise fail(key, f"expected a table, got {table!r}")
    for field_name in table:
        if field_name not in PARAM_KEYS:
            raise fail(f"{key}.{field_name}",
                       f"unknown key (expected one of: {', '.join(sorted(PARAM_KEYS))})")
    role = table.get("role")
    if role not in ROLES:
        raise fail(f"{key}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    value_type = PARAMETER_KINDS[name]
    lowest, highest = PARAMETER_BOUNDS.get(name, (None, None))
    allowed = ALLOWED_VALUES.get(name)

    def number(field_name: str, value: Any) -> Any:
        if allowed is not None:
            if value not in allowed or isinstance(value, bool):
                raise fail(f"{key}.{field_name}", f"expected one of {', '.join(map(str, allowed))}, got {value!r}")
            return value_type(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and value_type is int and not float(value).is_integer():
            ok = False
        if not ok:
            raise fail(f"{key}.{field_name}", f"expected {'an integer' if value_type is int else 'a number'}, got {value!r}")
        if not lowest <= value <= highest:
            expected = EXPECTED_VALUES.get(name, f"a value in [{lowest:g}, {highest:g}]")
            raise fail(f"{key}.{field_name}", f"expected {expected}, got {value!r}")
        return value_type(value)

    if role == "fixed":
        if "value" not in table:
            raise fail(f"{key}.value", "missing: a fixed parameter needs value = ...")
        extra = set(table) - {"role", "value", "note", "type"}
        if extra:
            raise fail(f"{key}.{sorted(extra)[0]}", "not allowed on a fixed parameter (only value)")
        return ParameterSpec(name, role, "fixed", value=number("value", table["value"]))

    if "choices" in table:
        choices = table["choices"]
        if not isinstance(choices, list) or not choices:
            raise fail(f"{key}.choices", f"expected a non-empty list, got {choices!r}")
        extra = set(table) & {"low", "high", "log", "step", "value"}
        if extra:
            raise fail(f"{key}.{sorted(extra)[0]}", "not allowed beside choices")
        values = tuple(number("choices", c) for c in choices)
        if len(set(values)) != len(values):
            raise fail(f"{key}.choices", f"repeated value in {choices!r}")
        return ParameterSpec(name, role, "categorical", choices=values)

    if name in CHOICES_ONLY:
        raise fail(key, "give choices = [...] or role = \"fixed\" with value = ... (no range for this one)")
    for field_name in ("low", "high"):
        if field_name not in table:
            raise fail(f"{key}.{field_name}", "missing: give low and high, or choices")
    low, high = number("low", table["low"]), number("high", table["high"])
    if not low < high:
        raise fail(f"{key}.high", f"empty range: high ({high!r}) must be greater than low ({low!r})")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise fail(f"{key}.log", f"expected true or false, got {log!r}")
    if log and low <= 0:
        raise fail(f"{key}.low", f"a log range needs low > 0, got {low!r}")
    step = table.get("step")
    if step is not None:
        step = number("step", step)
        if step <= 0 or log:
            raise fail(f"{key}.step", f"expected a positive step on a linear range, got {step!r}")
    kind = "int" if value_type is int else "float"
    return ParameterSpec(name, role, kind, low=low, high=high, log=log, step=step)


def _parse_seeds(seeds: Any, parameters: list[ParameterSpec], fail) -> tuple[SeedConfig, ...]:
    if not isinstance(seeds, list) or not all(isinstance(s, dict) for s in seeds):
        raise fail("seeds", "expected [[seeds]] tables")
    by_name = {p.name: p for p in parameters}
    parsed, names = [], set()
    for index, table in enumerate(seeds):
        name = table.get("name")
        label = f"seeds[{index}]"
        if not isinstance(name, str) or not name:
            raise fail(f"{label}.name", f"expected a non-empty string, got {name!r}")
        label = f"seeds.{name}"
        if name in names:
            raise fail(label, "repeated seed name")
        names.add(name)
        params = {}
        for key, value in table.items():
            if key in SEED_INFO_KEYS:
                continue
            if key not in by_name:
                raise fail(f"{label}.{key}", "unknown key (expected a declared hyperparameter, "
                           "published_accuracy, published_time_ms or note)")
            spec = by_name[key]
            if not spec.contains(value):
                raise fail(f"{label}.{key}", f"{value!r} is outside the space ({spec.describe()})")
            params[key] = PARAMETER_KINDS[key](value)
        for spec in parameters:
            if spec.kind == "fixed":
                params.setdefault(spec.name, spec.value)
            elif spec.name in SEVEN_SETTINGS and spec.name not in params:
                if not spec.contains(SEVEN_SETTINGS[spec.name]):
                    raise fail(f"{label}.{spec.name}", f"the seven's value {SEVEN_SETTINGS[spec.name]!r} is outside "
                               f"the space ({spec.describe()}): include it, or give the seed its own value")
                params[spec.name] = SEVEN_SETTINGS[spec.name]
            elif spec.name not in params:
                raise fail(f"{label}.{spec.name}", "missing: a seed gives every varied hyperparameter")
        accuracy = table.get("published_accuracy")
        if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                     or not 0 <= accuracy <= 1):
            raise fail(f"{label}.published_accuracy", f"expected a fraction in [0, 1], got {accuracy!r}")
        time_ms = table.get("published_time_ms")
        if time_ms is not None and (isinstance(time_ms, bool) or not isinstance(time_ms, (int, float))
                                    or time_ms < 0):
            raise fail(f"{label}.published_time_ms", f"expected a non-negative number, got {time_ms!r}")
        note = table.get("note", "")
        if not isinstance(note, str):
            raise fail(f"{label}.note", f"expected a string, got {note!r}")
        parsed.append(SeedConfig(name, params, accuracy, time_ms, note))
    return tuple(parsed)


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Sample one configuration from `space` through an Optuna trial; returns plain values."""
    params: dict[str, Any] = {}
    for spec in space.parameters:
        if spec.kind == "fixed":
            params[spec.name] = spec.value
        elif spec.kind == "categorical":
            params[spec.name] = trial.suggest_categorical(spec.name, list(spec.choices))
        elif spec.kind == "int":
            params[spec.name] = trial.suggest_int(
                spec.name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            params[spec.name] = trial.suggest_float(
                spec.name, spec.low, spec.high, step=spec.step, log=spec.log
            )
    return params


def distribution(spec: ParameterSpec):
    """The Optuna distribution `suggest` uses for a varied parameter (to import foreign trials)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.kind == "categorical":
        return CategoricalDistribution(list(spec.choices))
    if spec.kind == "int":
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
    return FloatDistribution(spec.low, spec.high, log=spec.log, step=spec.step)


def seed_trial_params(space: SearchSpace, seed: SeedConfig) -> dict[str, Any]:
    """The parameters to enqueue for a seed: its values of the varied hyperparameters."""
    return {spec.name: seed.params[spec.name] for spec in space.varied()}


FLAG_NAMES = {"image_size": "--image-size", "alpha": "--alpha", "batch_size": "--batch-size",
              "augment_strength": "--augment-strength"}


def fix_parameter(space: SearchSpace, name: str, value: Any) -> SearchSpace:
    """`space` with `name` fixed at `value`; seeds take that value too."""
    from dataclasses import replace

    parameters = tuple(ParameterSpec(name, "fixed", "fixed", value=value) if p.name == name else p
                       for p in space.parameters)
    seeds = tuple(replace(seed, params={**seed.params, name: value}) for seed in space.seeds)
    return replace(space, parameters=parameters, seeds=seeds)


def apply_run_flags(space: SearchSpace, flags: dict[str, Any], mode: str) -> tuple[SearchSpace, list[str]]:
    """Reconcile the run's `--image-size` / `--alpha` (None: not given) and mode with the space.

    A flag the space does not declare is the run's setting, as before. A flag whose value the
    space can take narrows the parameter to that value for this run; one it cannot take
    contradicts the space: SearchSpaceError. Outside finetune mode no base block trains, so a
    declared `unfreeze_blocks` is fixed at 0. Returns the space to run and lines to tell the user.
    """
    notes = []
    declared = {p.name: p for p in space.parameters}
    for name, value in flags.items():
        if value is None or name not in declared:
            continue
        spec = declared[name]
        if not spec.contains(value):
            raise SearchSpaceError(
                f"{space.path}: params.{name}: {FLAG_NAMES[name]} {value:g} contradicts the space "
                f"({spec.describe()}); drop {FLAG_NAMES[name]} or give one of its values")
        if spec.kind != "fixed":
            space = fix_parameter(space, name, value)
            notes.append(f"{FLAG_NAMES[name]} {value:g}: {name} fixed at {value:g} for this run "
                         f"(the space searches {spec.describe()})")
    spec = declared.get("unfreeze_blocks")
    if spec is not None and mode != "finetune" and not (spec.kind == "fixed" and spec.value == 0):
        space = fix_parameter(space, "unfreeze_blocks", 0)
        notes.append(f"mode {mode} trains no base block: unfreeze_blocks fixed at 0 for this run")
    neutral = dict(BASE_TRAINING_PARAMETERS) if mode != "finetune" else {}
    if mode in ("cached", "two-stage"):  # augmentation is baked into the cached features
        strength = flags.get("augment_strength")
        neutral["augment_strength"] = SEVEN_SETTINGS["augment_strength"] if strength is None else strength
    for name, value in neutral.items():
        spec = declared.get(name)
        if spec is not None and not (spec.kind == "fixed" and spec.value == value):
            space = fix_parameter(space, name, value)
            why = "trains no base" if name in BASE_TRAINING_PARAMETERS else "trains on cached features"
            notes.append(f"mode {mode} {why}: {name} fixed at {value:g} for this run")
    return space, notes


def check_recipe_fits(space: SearchSpace, epochs: int) -> None:
    """Refuse warm-ups that leave no epoch after them (SearchSpaceError naming file, key, value)."""
    for name in ("warmup_epochs", "head_warmup_epochs"):
        spec = next((p for p in space.parameters if p.name == name), None)
        if spec is None:
            continue
        longest = max(spec.choices) if spec.kind == "categorical" else spec.value if spec.kind == "fixed" \
            else spec.high
        if longest >= epochs:
            raise SearchSpaceError(f"{space.path}: params.{name}: {longest:g} warm-up epochs do not fit an epoch "
                                   f"budget of {epochs} (expected fewer warm-up epochs than --epochs)")


def values_of(space: SearchSpace, name: str, default: Any) -> tuple:
    """Every value parameter `name` can take in `space` (choices or fixed value; `default` if undeclared)."""
    spec = next((p for p in space.parameters if p.name == name), None)
    if spec is None:
        return (default,)
    if spec.kind == "fixed":
        return (spec.value,)
    if spec.kind == "categorical":
        return tuple(spec.choices)
    raise ValueError(f"{name} is a range")


def space_of_study(attrs: dict) -> SearchSpace:
    """The space a study ran: its stored file, with the run's flags and mode applied (see `apply_run_flags`)."""
    space = parse_space(attrs[StudyKey.SPACE_TEXT],
                        f"{attrs.get(StudyKey.SPACE_NAME, 'space')}.toml (stored in the study)")
    train = attrs.get(StudyKey.TRAIN, {})
    recorded = dict(train, augment_strength=augment_strength_of(train.get("augment", {})))
    flags = {name: recorded.get(name) for name in attrs.get(StudyKey.EXPLICIT_FLAGS, ())}
    return apply_run_flags(space, flags, train.get("mode", "finetune"))[0]


def augment_strength_of(augment: dict) -> float:
    """The `--augment-strength` a recorded AugmentConfig was scaled by."""
    from study.config import AugmentConfig

    return round(augment.get("rotation", AugmentConfig.rotation) / AugmentConfig.rotation, 9)
