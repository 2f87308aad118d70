"""`python -m study export-model`: a trial's model as a file a phone or a server can run, measured.

A `run` keeps the models of the trials on its fronts (accuracy against multiply-adds and
against size) beside the storage in `<study>.front/`, and the study's best model; those are
read as they are. Any other completed trial is trained again first, with its parameters and
its seed: the same configuration, not the same numbers (CPU kernels and the best-epoch choice
vary between runs). Formats: `keras` (a `.keras` file), `saved_model` (a TensorFlow
SavedModel folder) and `tflite`, optionally quantised: `float16` weights, `int8` weights and
activations calibrated on a sample of the study's training split, or `int16x8` (int8
weights, 16-bit activations); input and output stay float, so the model takes 0-255 pixels
as the Keras model does. The exported file is then run on the study's test split (the
TFLite interpreter for `.tflite`, the SavedModel's `serve` for `saved_model`) and its
accuracy printed beside the Keras model's; the numbers are kept on the study for the report.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from study.backends import is_installed
from study.errors import StorageError, StudyError
from study.store.record import CostKey, StudyKey, TrialKey

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "int8", "int16x8")
CALIBRATION_IMAGES = 200  # int8: training images the converter sees to set activation ranges


def check_request(fmt: str, quantize: str, out: Path) -> None:
    """Refuse a format, quantisation or output path that cannot work, before any work is done."""
    if fmt not in FORMATS:
        raise StudyError(f"--format: unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    if quantize not in QUANTIZATIONS:
        raise StudyError(f"--quantize: unknown quantisation {quantize!r} (expected one of: {', '.join(QUANTIZATIONS)})")
    if quantize != "none" and fmt != "tflite":
        raise StudyError(f"--quantize {quantize} needs --format tflite (keras and saved_model keep float32)")
    if fmt in ("saved_model", "tflite") and not is_installed("tensorflow"):
        raise StudyError(f"--format {fmt} needs TensorFlow, which is not installed here (pip install tensorflow); "
                         "--format keras works on any backend")
    if fmt == "keras" and out.suffix != ".keras":
        raise StudyError(f"--out '{out}': a Keras model file must end in .keras")
    if fmt != "saved_model" and out.is_dir():
        raise StudyError(f"--out '{out}' is a folder; expected a file path")
    if fmt == "saved_model" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"--out '{out}' exists and is not an empty folder (a SavedModel is written as a folder)")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise StudyError(f"--out '{out}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise StudyError(f"--out '{out}': folder '{parent}' is not writable")


def choose_trial(study, trial_number: int | None):
    """The completed trial to export: `trial_number`, or the most accurate one."""
    from optuna.trial import TrialState

    from study.store.record import best_by_accuracy

    trials = study.get_trials(deepcopy=False)
    if trial_number is None:
        best = best_by_accuracy(trials)
        if best is None:
            raise StorageError(f"study '{study.study_name}' has no completed trial to export")
        return best
    found = next((t for t in trials if t.number == trial_number), None)
    if found is None:
        raise StorageError(f"study '{study.study_name}' has no trial {trial_number} "
                           f"(its trials are numbered 0 to {len(trials) - 1})")
    if found.state != TrialState.COMPLETE:
        raise StorageError(f"trial {trial_number} of study '{study.study_name}' is {found.state.name}; "
                           "only completed trials have a model to export")
    return found


def trial_params(trial, space) -> dict:
    """Every parameter the trial trained with: sampled ones, and the fixed ones it recorded."""
    return {spec.name: trial.params.get(spec.name, trial.user_attrs.get(spec.name, spec.value))
            for spec in space.parameters}


def export_model(location, study_name: str, trial_number: int | None, fmt: str, quantize: str, out: Path,
                 artifacts: str | None = None, data_dir: Path | None = None) -> dict:
    """Export one trial's model to `out` and measure it; returns what was printed, as numbers.

    The model comes from the study's files, fetched from its shared store when it has one.
    Without the study's images on this machine (and no `data_dir`), the export is not measured
    (accuracy None) and one line says so."""
    check_request(fmt, quantize, out)
    from study.store.artifacts import fetch_best, fetch_kept, study_store
    from study.store.record import kept_model_name
    from study.store.storage import best_model_paths, front_models_dir, load_study

    study = load_study(location, study_name)
    attrs = study.user_attrs
    if StudyKey.TRAIN not in attrs:
        raise StorageError(f"study '{study_name}' was not made by `python -m study run`")
    trial = choose_trial(study, trial_number)
    store, url = study_store(location, attrs, artifacts, study_name)
    fetch_best(location, study_name, study.get_trials(deepcopy=False), store, url)
    images = Path(data_dir) if data_dir is not None else Path(attrs[StudyKey.DATA_DIR])
    data, train, space, params = study_data(attrs, trial, images)
    model_path, meta_path = best_model_paths(location, study_name)
    saved = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}

    import keras

    kept = front_models_dir(location, study_name) / kept_model_name(trial.number)
    if fetch_kept(trial, kept, store, url):
        model = keras.models.load_model(kept, compile=False)
        how = "its model, kept as a front trial's"
    elif saved.get("trial_number") == trial.number and model_path.is_file():
        model = keras.models.load_model(model_path, compile=False)
        how = "the study's saved best model"
    elif data is None:
        raise StudyError(f"trial {trial.number}: its model was not kept, and training it again needs the study's "
                         f"images, which are not at '{images}' (give --data DIR)")
    else:
        print(f"trial {trial.number}: its model was not kept (only the front's and the best are); training "
              f"it again with its parameters and seed ({train.epochs} epochs, mode {train.mode}), which gives "
              "a model of the same configuration, not the same numbers", flush=True)
        model = retrain(location, attrs, train, space, trial, params, data)
        how = "trained again"
    image_size = int(params.get("image_size", train.image_size))
    if data is None:
        if quantize in ("int8", "int16x8"):
            raise StudyError(f"--quantize {quantize} calibrates on the study's training images, which are not at "
                             f"'{images}' (give --data DIR)")
        print(f"test accuracy: not measured: the study's images are not at '{images}' (give --data DIR)", flush=True)
        return export_unmeasured(model, trial, fmt, quantize, out, how, image_size)
    x_test, y_test = data.x["test"], data.y["test"]
    keras_accuracy = float((predict_keras(model, x_test).argmax(1) == y_test).mean())

    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        from study.trial.cost import inference_copy

        inference_copy(model).save(out)
        probabilities = predict_keras(keras.models.load_model(out, compile=False), x_test)
    elif fmt == "saved_model":
        if out.exists():
            out.rmdir()
        model.export(str(out), format="tf_saved_model", verbose=False)
        probabilities = predict_saved_model(out, x_test)
    else:
        rng = np.random.default_rng(0)
        sample = data.x["train"][np.sort(rng.choice(len(data.x["train"]), min(CALIBRATION_IMAGES,
                                                                                len(data.x["train"])), replace=False))]
        probabilities = export_tflite(model, quantize, sample, out, x_test, f"trial {trial.number}")
    exported_accuracy = float((probabilities.argmax(1) == y_test).mean())
    n_bytes = path_bytes(out)
    keras_bytes = trial.user_attrs.get(CostKey.MODEL_BYTES)
    result = {"trial": trial.number, "format": fmt, "quantize": quantize, "bytes": n_bytes,
              "accuracy": exported_accuracy, "keras_accuracy": keras_accuracy, "keras_bytes": keras_bytes,
              "n_images": int(len(y_test)), "image_size": image_size, "source": how}
    record_export(study, result)
    return result


def study_data(attrs: dict, trial, images: Path | None = None):
    """The study's splits at the trial's image size (checked unchanged; None when `images`, the
    study's data folder by default, is not on this machine), its settings, space and parameters."""
    from study.config import SplitConfig, train_config_from_record
    from study.data.images import load_splits
    from study.space.spec import space_of_study

    train = train_config_from_record(attrs[StudyKey.TRAIN])
    space = space_of_study(attrs)
    params = trial_params(trial, space)
    images = Path(attrs[StudyKey.DATA_DIR]) if images is None else images
    if not images.is_dir():
        return None, train, space, params
    split = SplitConfig(**attrs.get(StudyKey.SPLIT, {}))
    data = load_splits(images, int(params.get("image_size", train.image_size)), split, attrs[StudyKey.SPLIT_SEED])
    if data.fingerprint != attrs[StudyKey.DATA_FINGERPRINT]:
        raise StorageError(f"the images in '{images}' changed since the study ran")
    return data, train, space, params


def export_unmeasured(model, trial, fmt: str, quantize: str, out: Path, how: str, image_size: int) -> dict:
    """Write the export without the study's images: no accuracy, no int8 calibration."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        from study.trial.cost import inference_copy

        inference_copy(model).save(out)
    elif fmt == "saved_model":
        if out.exists():
            out.rmdir()
        model.export(str(out), format="tf_saved_model", verbose=False)
    else:
        out.write_bytes(to_tflite(model, quantize, np.zeros((0, image_size, image_size, 3), np.uint8)))
    result = {"trial": trial.number, "format": fmt, "quantize": quantize, "bytes": path_bytes(out),
              "accuracy": None, "keras_accuracy": None, "keras_bytes": trial.user_attrs.get(CostKey.MODEL_BYTES),
              "n_images": 0, "image_size": image_size, "source": how}
    return result  # not recorded: the report compares measured exports only


def retrain(location, attrs: dict, train, space, trial, params: dict, data):
    """Train `trial` again in this process with its parameters and seed; the model that takes images.

    `data` holds the study's splits at the trial's image size; the run's own size is decoded
    only when that differs."""
    from study.config import RunConfig, SplitConfig
    from study.data.images import load_splits
    from study.search.runner import space_shapes, start_runtime
    from study.trial.fit import EpochLog
    from study.trial.job import TrialHooks, TrialJob, image_model

    split = SplitConfig(**attrs.get(StudyKey.SPLIT, {}))
    if int(params.get("image_size", train.image_size)) != train.image_size:
        data = load_splits(Path(attrs[StudyKey.DATA_DIR]), train.image_size, split, attrs[StudyKey.SPLIT_SEED])
    setup, runtime, _, _ = start_runtime(data, split, train, location, RunConfig(data_dir=data.root, isolation="none"),
                                         announce=False, shapes=space_shapes(space, train))
    try:
        job = TrialJob(trial.number, params, train.seed + trial.number, patience=train.patience)
        result = runtime.run(setup, job, TrialHooks(), EpochLog())
        print(f"trial {trial.number}: validation accuracy {result.best_val_accuracy:.4f}, test accuracy "
              f"{result.test_accuracy:.4f} (the study's: {trial.values[0]:.4f}, "
              f"{trial.user_attrs.get(TrialKey.TEST_ACCURACY, float('nan')):.4f})", flush=True)
        return image_model(setup, job, runtime.trainer.model)
    finally:
        runtime.close()


def predict_keras(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    from study.trial.inference import Predictor

    return Predictor(model).probabilities(images, batch_size)


def predict_saved_model(folder: Path, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))  # kept: `serve` refers to its variables
    return np.concatenate([loaded.serve(tf.constant(images[i:i + batch_size], tf.float32)).numpy()
                           for i in range(0, len(images), batch_size)])


def to_tflite(model, quantize: str, calibration: np.ndarray) -> bytes:
    """The TFLite flatbuffer of `model`, converted from a SavedModel export of it."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="study-tflite-") as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize in ("int8", "int16x8"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # int16x8: int8 weights (the same size) with 16-bit activations, for models whose
            # accuracy 8-bit activations cost; fewer phone delegates run it than int8.
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8"
                else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

            def representative():
                for image in calibration:
                    yield [image[None].astype(np.float32)]

            converter.representative_dataset = representative
        return converter.convert()


def export_tflite(model, quantize: str, calibration: np.ndarray, out: Path, images: np.ndarray,
                  label: str) -> np.ndarray:
    """Write `model` to `out` as TFLite and return its probabilities on `images`; when the
    converter or the interpreter refuses it (int16x8 overflows in some models), no file is
    left and a StudyError says why in one line."""
    try:
        out.write_bytes(to_tflite(model, quantize, calibration))
        return predict_tflite(out, images)
    except Exception as error:
        out.unlink(missing_ok=True)
        kind = "tflite" + ("" if quantize == "none" else f" {quantize}")
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1][:300].rstrip(".")
        raise StudyError(f"{label} cannot be exported as {kind}: {reason}"
                         + ("; try --quantize int8" if quantize == "int16x8" else "")) from None


def predict_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities from the TFLite interpreter, one image at a time (as on a phone)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        # TensorFlow 2.21 warns that tf.lite.Interpreter moves to the ai-edge-litert package; it
        # still ships and runs it, and that package is not among the installable ones here.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        interpreter.set_tensor(source["index"], image[None].astype(source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].astype(np.float32))
    return np.stack(outputs)


def path_bytes(path: Path) -> int:
    """A file's size, or the total size of the files under a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def record_export(study, result: dict) -> None:
    """Keep the measured export on the study, for the report (latest per trial, format, quantisation)."""
    from study.store.record import export_key

    exports = dict(study.user_attrs.get(StudyKey.EXPORTS, {}))
    exports[export_key(result["trial"], result["format"], result["quantize"])] = result
    study.set_user_attr(StudyKey.EXPORTS, exports)
