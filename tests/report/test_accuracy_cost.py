"""Accuracy against cost end to end: a multi-objective cached study that searches pooling and
image size, its report section, and export-model in every format with its bad inputs."""

from __future__ import annotations

import re

import numpy as np
import optuna
import pytest

from tests.commands import study_cli
from tests.conftest import run_once, write_class_images

COST_SPACE = """
n_trials = 4
[params.head_depth]
role = "scientific"
choices = [0, 1]
[params.dense_units]
role = "scientific"
low = 8
high = 16
[params.learning_rate]
role = "scientific"
low = 1e-2
high = 5e-2
log = true
[params.dropout]
role = "fixed"
value = 0.0
[params.pooling]
role = "scientific"
choices = ["flatten", "avg", "max"]
[params.image_size]
role = "scientific"
choices = [32, 48]
[params.unfreeze_blocks]
role = "scientific"
low = 0
high = 13

[[seeds]]
name = "wide_flat"
head_depth = 1
dense_units = 16
learning_rate = 2e-2
pooling = "flatten"
image_size = 48
unfreeze_blocks = 13

[[seeds]]
name = "small_avg"
head_depth = 0
dense_units = 8
learning_rate = 2e-2
pooling = "avg"
image_size = 32
unfreeze_blocks = 13
"""


@pytest.fixture(scope="session")
def cost_study(tmp_path_factory):
    """A finished 4-trial study: cached mode, accuracy and multiply-adds, two image sizes.

    Made once per test run (an xdist worker may tear a module fixture down between two of its
    tests); the suite sends each file to one worker, so these tests write into it one at a time."""
    return run_once(tmp_path_factory, "cost", make_cost_study)


def make_cost_study(folder):
    write_class_images(folder / "images", {"red": 10, "green": 10, "blue": 10}, size=48)
    (folder / "cost.toml").write_text(COST_SPACE)
    result = study_cli("run", "--data", "images", "--space", "cost.toml", "--mode", "cached", "--weights", "none",
                       "--alpha", "0.25", "--epochs", "3", "--batch-size", "8", "--objectives", "accuracy,macs",
                       "--sampler", "random", cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


@pytest.mark.slow
def test_multi_objective_study_searches_pooling_and_size_with_a_feature_cache_each(cost_study):
    folder, result = cost_study
    assert "unfreeze_blocks fixed at 0" in result.stdout  # cached mode trains no base block
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{folder}/study.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["validation accuracy", "multiply-adds"]
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    for trial in trials:
        assert trial.values[1] == trial.user_attrs["macs"]
        assert trial.values[0] == max(trial.user_attrs["history"]["val_accuracy"])
        assert not trial.intermediate_values  # a multi-objective study reports nothing to a pruner
        assert trial.user_attrs["params_base"] + trial.user_attrs["params_head"] == trial.user_attrs["params_total"]
    by_seed = {t.user_attrs.get("seed_name"): t for t in trials}
    # the same base at 48 px costs (48/32)^2 of its multiply-adds at 32 px (up to the head's few)
    ratio = by_seed["wide_flat"].user_attrs["macs"] / by_seed["small_avg"].user_attrs["macs"]
    assert 2.0 < ratio < 2.6
    assert by_seed["small_avg"].user_attrs["params_head"] == 256 * 3 + 3  # avg pool -> softmax
    assert len(list((folder / "feature-cache").iterdir())) == 2
    assert len([p for p in (folder / "image-cache").iterdir() if not p.name.startswith(".")]) == 2


@pytest.mark.slow
def test_report_has_the_front_with_the_seven_and_the_halvings(cost_study):
    folder, _ = cost_study
    result = study_cli("report", "--study-name", "images", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (folder / "reports" / "images" / "README.md").read_text()
    section = text[text.index("## Accuracy against cost"):text.index("## Figures")]
    assert "figures/cost_front.png" in section and (folder / "reports/images/figures/cost_front.png").is_file()
    assert "| Trial | Configuration | Validation |" in section
    assert "What each halving of cost gives up" in section and "Within 1 point of the best" in section
    assert "not exported yet" in section


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize, out", [("keras", "none", "m.keras"), ("saved_model", "none", "sm"),
                                                ("tflite", "none", "m.tflite"), ("tflite", "float16", "h.tflite"),
                                                ("tflite", "int8", "q.tflite")])
def test_export_model_writes_and_measures_each_format(cost_study, fmt, quantize, out):
    folder, _ = cost_study
    result = study_cli("export-model", "--study-name", "images", "--format", fmt, "--quantize", quantize,
                       "--out", out, cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""  # no library noise
    assert (folder / out).exists()
    size = re.search(r"^size: ([\d.]+) (KiB|MiB)", result.stdout, re.M)
    accuracy = re.search(r"^test accuracy: ([\d.]+) \((\w[\w ]+), (\d+) images\), Keras model ([\d.]+)$",
                         result.stdout, re.M)
    assert size and accuracy, result.stdout
    assert accuracy.group(2) == {"keras": "Keras", "saved_model": "SavedModel serve", "tflite": "TFLite interpreter"}[fmt]
    if quantize == "none":  # the same float32 network: the same answers
        assert accuracy.group(1) == accuracy.group(4)
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{folder}/study.db")
    record = next(v for k, v in study.user_attrs["exports"].items() if k.endswith(f"/{fmt}/{quantize}"))
    assert record["bytes"] > 0 and abs(record["accuracy"] - float(accuracy.group(1))) < 1e-4


@pytest.mark.slow
def test_front_models_are_kept_and_exported_as_they_are_others_are_trained_again(cost_study):
    from study.stats.front import cost_points, front_numbers

    folder, _ = cost_study
    study = optuna.load_study(study_name="images", storage=f"sqlite:///{folder}/study.db")
    on_front = front_numbers(cost_points(study.get_trials()))
    kept = {p.name for p in (folder / "images.front").iterdir()}
    assert kept == {f"trial-{n}.keras" for n in on_front}
    kept_trial = min(on_front)
    result = study_cli("export-model", "--study-name", "images", "--trial", str(kept_trial), "--format", "keras",
                       "--out", "kept.keras", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"exported trial {kept_trial} (its model, kept as a front trial's)" in result.stdout
    keras_accuracy = float(re.search(r"Keras model ([\d.]+)$", result.stdout, re.M).group(1))
    assert keras_accuracy == pytest.approx(study.trials[kept_trial].user_attrs["test_accuracy"], abs=5e-5)

    (folder / "images.front" / f"trial-{kept_trial}.keras").rename(folder / "moved.keras")  # as if not kept
    try:
        result = study_cli("export-model", "--study-name", "images", "--trial", str(kept_trial), "--format", "keras",
                           "--out", "again.keras", cwd=folder)
    finally:
        (folder / "moved.keras").rename(folder / "images.front" / f"trial-{kept_trial}.keras")
    assert result.returncode == 0, result.stderr[-2000:]
    saved = __import__("json").loads((folder / "images.best.json").read_text())["trial_number"]
    source = "the study's saved best model" if kept_trial == saved else "trained again"
    assert f"exported trial {kept_trial} ({source})" in result.stdout
    if source == "trained again":
        assert "training it again" in result.stdout
        assert re.search(r"validation accuracy [\d.]+, test accuracy [\d.]+ \(the study's", result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--trial", "99", "--format", "keras", "--out", "x.keras"], "has no trial 99"),
    (["--format", "onnx", "--out", "x.onnx"], "--format: unknown format 'onnx'"),
    (["--format", "tflite", "--quantize", "int4", "--out", "x.tflite"], "--quantize: unknown quantisation 'int4'"),
    (["--format", "keras", "--quantize", "int8", "--out", "x.keras"], "--quantize int8 needs --format tflite"),
    (["--format", "tflite", "--out", "space.toml/x.tflite"], "does not exist"),
    (["--format", "keras", "--out", "model.h5"], "must end in .keras"),
])
def test_export_model_bad_input_is_one_line_and_exit_2(cost_study, args, message):
    folder, _ = cost_study
    (folder / "space.toml").write_text("")  # a file where a folder is expected
    result = study_cli("export-model", "--study-name", "images", *args, cwd=folder)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("study: error:") and message in result.stderr


def test_tflite_predictions_match_keras(tmp_path):
    """float32 TFLite: the same probabilities; int8 and int16x8: the same top-1 class on most images."""
    import keras

    from study.trial.model import build_model
    from study.winners.export_model import predict_keras, predict_tflite, to_tflite

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = np.concatenate([np.clip(rng.normal(c, 30, (24, 32, 32, 3)), 0, 255) for c in (40, 130, 220)]).astype(np.uint8)
    y = np.repeat(np.arange(3), 24)
    model = build_model(n_classes=3, image_size=32, alpha=0.25, weights=None, head_depth=1, dense_units=16,
                        dropout=0.0, learning_rate=1e-2, pooling="avg")
    model.fit(x.astype("float32"), y, epochs=3, batch_size=8, verbose=0)
    expected = predict_keras(model, x)
    for quantize in ("none", "int8", "int16x8"):
        path = tmp_path / f"{quantize}.tflite"
        path.write_bytes(to_tflite(model, quantize, x[:32]))
        got = predict_tflite(path, x)
        if quantize == "none":
            np.testing.assert_allclose(got, expected, atol=1e-4)
        else:  # int8 weights either way: a quarter of the float32 weights' bytes, plus the graph
            assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.8
            assert path.stat().st_size < 0.45 * (tmp_path / "none.tflite").stat().st_size


@pytest.mark.slow
def test_finetune_mode_trains_each_trial_at_its_own_size_and_blocks(tmp_path):
    write_class_images(tmp_path / "images", {"red": 8, "green": 8}, size=48)
    (tmp_path / "cost.toml").write_text(COST_SPACE.replace("n_trials = 4", "n_trials = 2")
                                        .replace("unfreeze_blocks = 13\n\n", "unfreeze_blocks = 2\n\n", 1))
    result = study_cli("run", "--data", "images", "--space", "cost.toml", "--weights", "none", "--alpha", "0.25",
                       "--epochs", "1", "--batch-size", "8", "--objectives", "accuracy,size", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = {t.user_attrs["seed_name"]: t for t in
              optuna.load_study(study_name="images", storage=f"sqlite:///{tmp_path}/study.db").get_trials()}
    wide, small = trials["wide_flat"], trials["small_avg"]
    assert wide.values[1] == wide.user_attrs["model_bytes"]
    # trainable: 2 top blocks (wide_flat) against the whole base (small_avg), plus each head
    assert wide.user_attrs["trainable_params"] < small.user_attrs["trainable_params"] - small.user_attrs["params_head"]
    assert wide.user_attrs["macs"] > 2 * small.user_attrs["macs"]  # 48 px against 32 px
    assert not (tmp_path / "feature-cache").exists()


def test_a_model_tflite_refuses_is_one_line_and_leaves_no_file(tmp_path):
    from study.errors import StudyError
    from study.winners.export_model import export_tflite

    class NotExportable:
        def export(self, *args, **kwargs):
            raise RuntimeError("conversion failed\nNode number 12 (DEPTHWISE_CONV_2D) failed to prepare.")

    out = tmp_path / "m.tflite"
    out.write_bytes(b"old")  # a file from before is not left behind half-replaced
    with pytest.raises(StudyError) as error:
        export_tflite(NotExportable(), "int16x8", np.zeros((1, 32, 32, 3), np.uint8), out, np.zeros((1, 32, 32, 3)),
                      "trial 3")
    assert str(error.value) == ("trial 3 cannot be exported as tflite int16x8: Node number 12 (DEPTHWISE_CONV_2D) "
                                "failed to prepare; try --quantize int8")
    assert not out.exists()
