"""Choosing the Keras backend: the flag over KERAS_BACKEND over tensorflow, and one-line refusals."""

from __future__ import annotations

import sys

import pytest

from study import backends
from study.errors import StudyError
from tests.commands import study_cli
from tests.conftest import write_class_images


def test_the_flag_wins_over_the_environment_which_wins_over_tensorflow(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backends.requested_backend(None) == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.requested_backend(None) == "jax"
    assert backends.requested_backend("torch") == "torch"
    assert backends.requested_backend(" JAX ") == "jax"


def test_an_unknown_backend_is_refused_naming_it_and_the_choices():
    with pytest.raises(StudyError) as error:
        backends.check_backend("mxnet")
    assert str(error.value) == "--backend 'mxnet': expected one of tensorflow, jax, torch"


def test_a_backend_that_is_not_installed_is_refused_with_how_to_install_it(monkeypatch):
    monkeypatch.setattr(backends, "is_installed", lambda name: name != "torch")
    with pytest.raises(StudyError) as error:
        backends.check_backend("torch", "KERAS_BACKEND")
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("KERAS_BACKEND torch: PyTorch is not installed here (install it with pip")


def test_a_package_that_a_finder_refuses_counts_as_not_installed(monkeypatch):
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "refused_backend_package":
                raise ImportError("blocked")
            return None

    class Hide:
        def find_spec(self, name, path=None, target=None):
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, None) if name == "hidden_backend_package" else None

    monkeypatch.setattr(sys, "meta_path", [Refuse(), Hide(), *sys.meta_path])
    assert backends.is_installed("refused_backend_package") is False
    assert backends.is_installed("hidden_backend_package") is False  # a spec with no file is no package
    assert backends.is_installed("numpy") is True


def test_activating_sets_the_environment_the_workers_inherit(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    import keras  # this test process runs Keras on its default backend

    current = keras.backend.backend()
    assert backends.activate(current) == current
    import os

    assert os.environ["KERAS_BACKEND"] == current
    other = next(name for name in backends.BACKENDS if name != current)
    monkeypatch.setattr(backends, "is_installed", lambda name: True)
    with pytest.raises(StudyError, match=f"Keras is already running on {current}"):
        backends.activate(other)


def test_reading_commands_take_the_first_installed_backend(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(backends, "activate", lambda flag: flag)
    monkeypatch.setattr(backends, "is_installed", lambda name: name == "jax")
    assert backends.activate_for_reading() == "jax"
    monkeypatch.setattr(backends, "is_installed", lambda name: False)
    with pytest.raises(StudyError, match="no Keras backend is installed here"):
        backends.activate_for_reading()


@pytest.mark.parametrize("command", ["run", "confirm", "demo"])
def test_run_confirm_and_demo_refuse_an_unknown_backend_in_one_line_before_any_work(tmp_path, command):
    write_class_images(tmp_path / "images", {"a": 6, "b": 6})
    args = {"run": ["run", "--data", "images"], "confirm": ["confirm", "--study-name", "images"],
            "demo": ["demo"]}[command]
    result = study_cli(*args, "--backend", "mxnet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["study: error: --backend 'mxnet': expected one of tensorflow, "
                                                  "jax, torch"]
    assert not (tmp_path / "study.db").exists() and "Traceback" not in result.stderr


def test_the_install_without_tensorflow_lists_every_other_requirement_of_the_package():
    import configparser

    from tests.conftest import REPO

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    required = [line.strip() for line in config["options"]["install_requires"].splitlines()
                if line.strip() and not line.strip().startswith("#")]
    listed = [line.strip() for line in (REPO / "requirements-without-tensorflow.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert [r for r in required if not r.startswith("tensorflow")] == listed
    assert any(r.startswith("tensorflow") for r in required)  # the default install still brings it


def test_reading_commands_prefer_the_backend_the_study_trained_on(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(backends, "activate", lambda flag: flag)
    monkeypatch.setattr(backends, "is_installed", lambda name: True)
    assert backends.activate_for_reading("torch") == "torch"
    assert backends.activate_for_reading(None) == "tensorflow"
    assert backends.activate_for_reading("mxnet") == "tensorflow"  # an unknown record is ignored
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(backends, "activate", lambda flag: flag or "from the environment")
    assert backends.activate_for_reading("torch") == "from the environment"


def test_only_the_named_importers_are_refused_their_optional_package():
    finder = backends.SkipUnusedOptionalImports()
    asker = "def ask(finder, name):\n    return finder.find_spec(name)\n"

    def ask_from(module: str, name: str):
        namespace = {"__name__": module}
        exec(asker, namespace)
        return namespace["ask"](finder, name)

    for module, package in backends.UNUSED_OPTIONAL_IMPORTS.items():
        with pytest.raises(ModuleNotFoundError, match=f"{package} is not needed by {module}"):
            ask_from(module, package)
        assert ask_from(module, "numpy") is None  # their other imports go on as usual
        assert ask_from("study.figures.plots", package) is None  # and others import the package
    assert ask_from("keras.src.trainers.data_adapters.array_slicing", "matplotlib") is None


def optional_packages_in_this_worker() -> dict[str, tuple[bool, bool]]:
    """Per optional package: (imported with Keras, imports now); called inside a trial worker."""
    import importlib

    found = {}
    for package in sorted(set(backends.UNUSED_OPTIONAL_IMPORTS.values())):
        imported_with_keras = package in sys.modules
        found[package] = (imported_with_keras, importlib.import_module(package).__name__ == package)
    return found


@pytest.mark.slow
def test_a_worker_starts_keras_without_jax_pandas_or_matplotlib_which_stay_importable(monkeypatch):
    pytest.importorskip("jax")
    from study.trial.runtime import make_runtime

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    runtime = make_runtime("process")
    try:
        assert runtime.call("keras.backend:backend") == "tensorflow"
        assert runtime.call("tests.test_backends:optional_packages_in_this_worker") == {
            "jax": (False, True), "matplotlib": (False, True), "pandas": (False, True)}
    finally:
        runtime.close()
