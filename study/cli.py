"""Command line of `study`: parse, build the config, dispatch, return an exit code.

Examples:
    python -m study demo
    python -m study run --data photos/ --space seed --weights mobilenet_2_5_224_tf_no_top.h5 \
        --alpha 0.25 --image-size 128 --epochs 8 --study-name food-seed
    python -m study run --data photos/ --space default --n-trials 30 --study-name food
    python -m study evaluate --data other-photos/ --study-name food --json --report reports/food-other
    python -m study confirm --study-name food --top 3 --seeds 3 --epochs 30 --patience 5 --holdout held-out/
    python -m study ensemble --study-name food --top 3 --holdout held-out/
    python -m study report --study-name food
    python -m study dashboard --port 8080
    python -m study export --study-name food --format csv --out food.csv

Bad input ends with one line `study: error: ...` and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from study import interrupts, quiet
from study.config import AugmentConfig, RunConfig, SplitConfig, TrainConfig
from study.errors import StudyError
from study.trial.model import ALPHA_FILE_TAGS, MIN_IMAGE_SIZE, MODES
from study.trial.runtime import ISOLATIONS, check_jobs

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (`study: error: ...`) and exit code 2, like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"study: error: {message} (see: python -m {self.prog} --help)\n")


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def image_size(text: str) -> int:
    value = int(text)
    if value < MIN_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"MobileNet needs at least {MIN_IMAGE_SIZE} px, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from study.search.runner import PRUNERS, SAMPLERS

    parser = OneLineParser(prog="study", description="Optuna studies of MobileNet transfer-learning heads.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    run = commands.add_parser("run", help="run or resume a study on an image folder")
    run.add_argument("--data", type=Path, required=True, help="folder with one sub-folder of images per class")
    run.add_argument("--space", default="default", help="default, seed, or a path to a .toml space file")
    run.add_argument("--study-name", help="defaults to the data folder's name")
    run.add_argument("--storage", help="Optuna storage URL (default sqlite:///study.db here)")
    run.add_argument("--n-trials", type=positive_int, help="the study's total trials (default: the space's n_trials)")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    defaults = TrainConfig()
    run.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                     help=f"epochs per trial ({defaults.epochs}); with --patience, the most")
    run.add_argument("--patience", type=positive_int, metavar="P",
                     help="stop a trial once P epochs brought no better validation accuracy (its best epoch "
                          "is kept); recorded on the study, so a resume and confirm use it")
    run.add_argument("--keep-top", type=positive_int, metavar="K",
                     help="keep the models of the K most accurate trials, for `ensemble`")
    run.add_argument("--batch-size", type=positive_int,
                     help=f"default {defaults.batch_size}, or the space's when it declares batch_size")
    run.add_argument("--image-size", type=image_size, metavar="PX",
                     help=f"input size (default {defaults.image_size}, or the space's when it declares image_size)")
    run.add_argument("--alpha", type=float, choices=sorted(ALPHA_FILE_TAGS),
                     help=f"MobileNet width (default {defaults.alpha}, or the space's when it declares alpha)")
    run.add_argument("--weights", default=defaults.weights,
                     help="imagenet, none, a .h5 file, or a folder of Keras' MobileNet files (one per alpha)")
    run.add_argument("--mode", choices=MODES, default=defaults.mode)
    run.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    run.add_argument("--pruner", choices=PRUNERS, default="median")
    run.add_argument("--objectives", default="accuracy", metavar="LIST",
                     help="accuracy (default), or accuracy and costs to minimise: accuracy,macs (params, size, "
                          "latency): a multi-objective study, which is not pruned")
    run.add_argument("--seed", type=int, default=defaults.seed, help="split, sampler and training seed")
    split = SplitConfig()
    run.add_argument("--val-fraction", type=fraction, default=split.val_fraction)
    run.add_argument("--test-fraction", type=fraction, default=split.test_fraction)
    run.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    run.add_argument("--augment-strength", type=float,
                     help="multiplies the default rotation (+-18 deg) and zoom (+-10%%) (default 1, or the "
                          "space's when it declares augment_strength)")
    run.add_argument("--cached-augment-copies", type=int, default=0, metavar="N",
                     help="cached modes: augmented copies of the training set, computed once (0)")
    run.add_argument("--stage2-top", type=positive_int, default=RunConfig.stage2_top, metavar="K")
    run.add_argument("--unfreeze-blocks", type=int, default=RunConfig.unfreeze_blocks, metavar="N",
                     help="two-stage: top MobileNet blocks fine-tuned in stage 2 (13 = the whole base)")
    run.add_argument("--stage2-lr-factor", type=float, default=RunConfig.stage2_lr_factor)
    run.add_argument("--engine", choices=("optuna", "keras-tuner"), default="optuna",
                     help="keras-tuner: search the same space with Keras Tuner into study NAME-keras-tuner")
    run.add_argument("--kt-tuner", choices=("hyperband", "bayesian", "random"), default="hyperband")
    run.add_argument("--precision", choices=("float32", "mixed"), default="float32",
                     help="mixed: float16 compute on a GPU")
    run.add_argument("--jit", action="store_true", help="compile training steps with XLA (measure it first)")
    run.add_argument("--gpus", help="one worker per listed GPU, e.g. 0,1 (needs PostgreSQL or journal storage)")
    run.add_argument("--heartbeat-interval", type=positive_int, default=RunConfig.heartbeat_seconds,
                     metavar="SECONDS", help="RDB storages: a dead worker's trial is retried after 2 intervals")
    run.add_argument("--isolation", choices=ISOLATIONS, default=RunConfig.isolation,
                     help="process: each trial in a recycled worker process (default); none: in this process")
    run.add_argument("--jobs", type=positive_int, default=RunConfig.jobs, metavar="N",
                     help="train N trials at once, each in its own worker process (1); worth it while one "
                          "trial leaves cores or a GPU idle")
    run.add_argument("--trials-per-worker", type=positive_int, default=RunConfig.trials_per_worker, metavar="N",
                     help="a worker process serves N trials, then a fresh one starts (5)")
    run.add_argument("--worker-memory-limit", type=positive_number, metavar="MIB",
                     help="also replace a worker whose resident memory passed MIB (default: half the machine's)")
    run.add_argument("--trial-timeout", type=positive_number, metavar="SECONDS",
                     help="end a trial that runs longer; it fails as 'timed out after SECONDS s'")

    evaluate = commands.add_parser("evaluate", help="accuracy of a study's best model on another folder")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--study-name", help="defaults to the data folder's name")
    evaluate.add_argument("--storage")
    evaluate.add_argument("--batch-size", type=positive_int, default=32)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--report", type=Path, metavar="DIR",
                          help="also write DIR/README.md: where the model fails on these images, with figures")

    report = commands.add_parser("report", help="write reports/<study>/README.md with figures and trials.csv")
    report.add_argument("--study-name", required=True)
    report.add_argument("--storage")
    report.add_argument("--out", type=Path, default=Path("reports"), help="folder of reports (default reports)")
    report.add_argument("--no-images", action="store_true",
                        help="no figure shows the data's images (the mistakes become a table): for photos whose "
                             "licence does not allow sharing them")

    confirm = commands.add_parser("confirm", help="retrain the best configurations with several seeds")
    confirm.add_argument("--study-name", required=True)
    confirm.add_argument("--storage")
    confirm.add_argument("--top", type=positive_int, default=3, help="how many searched configurations (3)")
    confirm.add_argument("--seeds", type=positive_int, default=3, help="runs per configuration (3)")
    confirm.add_argument("--epochs", type=positive_int, metavar="E",
                         help="epoch budget of each run (default: the study's); with --patience, the most")
    confirm.add_argument("--patience", type=positive_int, metavar="P",
                         help="stop a run once P epochs brought no better validation accuracy; the best epoch "
                              "is restored")
    confirm.add_argument("--holdout", type=Path, metavar="DIR",
                         help="images the study never saw (same classes or a subset): every retrained model is "
                              "scored on them, and the report compares the winner with the best of the seven "
                              "image by image")

    ensemble = commands.add_parser("ensemble", help="average the probabilities of the K most accurate trials")
    ensemble.add_argument("--study-name", required=True)
    ensemble.add_argument("--storage")
    ensemble.add_argument("--top", type=positive_int, default=3, metavar="K",
                          help="members: the K most accurate trials, kept by run --keep-top (3)")
    ensemble.add_argument("--holdout", type=Path, metavar="DIR",
                          help="images the study never saw: the ensemble against the single best, image by image")
    ensemble.add_argument("--batch-size", type=positive_int, default=32)

    compare = commands.add_parser("compare", help="best accuracy vs trials and wall time for two studies")
    compare.add_argument("studies", nargs=2, metavar="STUDY")
    compare.add_argument("--storage")
    compare.add_argument("--out", type=Path, default=Path("reports"), help="folder for the figure (reports)")

    dashboard = commands.add_parser("dashboard", help="optuna-dashboard on the storage, with trial artifacts")
    dashboard.add_argument("--storage")
    dashboard.add_argument("--host", default="127.0.0.1", help="loopback unless asked (no login!)")
    dashboard.add_argument("--port", type=positive_int, default=8080)

    export = commands.add_parser("export", help="all trials with params, states, values and attrs")
    export.add_argument("--study-name", required=True)
    export.add_argument("--storage")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")

    export_model = commands.add_parser("export-model", help="a trial's model as .keras, SavedModel or TFLite, measured")
    export_model.add_argument("--study-name", required=True)
    export_model.add_argument("--storage")
    export_model.add_argument("--trial", type=int, metavar="K", help="trial number (default: the most accurate)")
    export_model.add_argument("--data", type=Path, metavar="DIR",
                              help="the study's images, when its data folder is not on this machine (test accuracy, "
                                   "int8 calibration)")
    export_model.add_argument("--format", required=True, metavar="FORMAT", help="keras, saved_model or tflite")
    export_model.add_argument("--quantize", default="none", metavar="Q",
                              help="tflite only: none (float32), float16, int8 (calibrated on training images), or "
                                   "int16x8 (int8 weights, 16-bit activations)")
    export_model.add_argument("--out", type=Path, required=True, metavar="PATH",
                              help="file to write (a folder for saved_model)")

    for command in (run, confirm, evaluate, report, export_model, dashboard, ensemble):
        command.add_argument("--artifacts", metavar="URL",
                             help="the study's shared artifact store: a folder, or s3://BUCKET/PREFIX (S3, MinIO, "
                                  "Ceph, R2; credentials and endpoint from the AWS environment); recorded on the "
                                  "study by run, found from the storage by later commands")

    demo = commands.add_parser("demo", help="a short study on generated images (no data, GPU or network needed)")
    from study.backends import BACKENDS

    for command in (run, confirm, demo):
        command.add_argument("--backend", metavar="NAME",
                             help=f"Keras backend the trials train on: {', '.join(BACKENDS)} (default: the "
                                  "KERAS_BACKEND environment variable, else tensorflow); recorded on the study")
    for command in commands.choices.values():
        command.add_argument("--verbose", action="store_true",
                             help="show everything: TensorFlow's native log lines, library warnings, Keras' "
                                  "per-epoch lines")
    return parser


def run_command(args: argparse.Namespace) -> int:
    from study.search.runner import run_study
    from study.search.workers import launch_workers, parse_gpus
    from study.space.objectives import parse_objectives

    if args.gpus is not None:
        return launch_workers(parse_gpus(args.gpus), args.storage, sys.argv[1:])
    if args.val_fraction + args.test_fraction >= 1:
        raise StudyError(f"--val-fraction {args.val_fraction} + --test-fraction {args.test_fraction} "
                         "leave no training images (expected a sum below 1)")
    if not 0 <= args.unfreeze_blocks <= 13:
        raise StudyError(f"--unfreeze-blocks: expected 0 to 13 (MobileNet has 13 blocks), got {args.unfreeze_blocks}")
    if args.cached_augment_copies < 0:
        raise StudyError(f"--cached-augment-copies: expected 0 or more, got {args.cached_augment_copies}")
    if args.augment_strength is not None and args.augment_strength < 0:
        raise StudyError(f"--augment-strength: expected a non-negative number, got {args.augment_strength}")
    if args.patience is not None and args.patience >= args.epochs:
        raise StudyError(f"--patience {args.patience} must be below --epochs {args.epochs}, "
                         "or no trial could stop early")
    strength = 1.0 if args.augment_strength is None else args.augment_strength
    augment = AugmentConfig(enabled=not args.no_augment).scaled(strength)
    defaults = TrainConfig()
    explicit = tuple(name for name in ("image_size", "alpha", "batch_size", "augment_strength")
                     if getattr(args, name) is not None)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size or defaults.batch_size, patience=args.patience,
                        image_size=args.image_size or defaults.image_size,
                        alpha=args.alpha or defaults.alpha, weights=args.weights, mode=args.mode, augment=augment, seed=args.seed,
                        precision=args.precision, augment_copies=args.cached_augment_copies, jit=args.jit)
    config = RunConfig(
        data_dir=args.data, space=args.space, study_name=args.study_name, storage=args.storage,
        artifacts=args.artifacts,
        n_trials=args.n_trials, timeout=args.timeout, sampler=args.sampler, pruner=args.pruner,
        split=SplitConfig(args.val_fraction, args.test_fraction), train=train, verbose=args.verbose,
        heartbeat_seconds=args.heartbeat_interval, stage2_top=args.stage2_top,
        unfreeze_blocks=args.unfreeze_blocks, stage2_lr_factor=args.stage2_lr_factor,
        isolation=args.isolation, jobs=args.jobs, trials_per_worker=args.trials_per_worker,
        worker_memory_mb=args.worker_memory_limit, trial_timeout=args.trial_timeout,
        objectives=parse_objectives(args.objectives), explicit_flags=explicit, command_line=command_line(),
        augment_strength=strength, keep_top=args.keep_top or 0,
    )
    check_jobs(args.isolation, args.jobs)  # before the photos are decoded
    if args.engine == "keras-tuner":
        if args.jobs > 1:
            raise StudyError(f"--jobs {args.jobs}: Keras Tuner runs one trial at a time; use --engine optuna")
        if len(config.objectives) > 1:
            raise StudyError("--objectives: Keras Tuner searches one objective; use --engine optuna")
        from study.search.keras_tuner_engine import run_keras_tuner

        return run_keras_tuner(config, args.kt_tuner)
    return run_study(config)


def evaluate_command(args: argparse.Namespace) -> int:
    from study.store.storage import resolve_storage
    from study.winners.evaluate import evaluate_folder

    study_name = args.study_name or args.data.resolve().name
    result = evaluate_folder(resolve_storage(args.storage), study_name, args.data, args.batch_size, args.report,
                             artifacts=args.artifacts)
    if args.json:
        print(result.to_json())
    else:
        print(f"accuracy {result.accuracy:.4f} on {result.n_images} images")
        for name, row in result.per_class.items():
            print(f"  {name}: {row['accuracy']:.4f} ({row['n_images']} images)")
    if args.report and not args.json:
        print(f"report: {args.report / 'README.md'}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from study.report.page import write_report
    from study.store.storage import resolve_storage

    readme = write_report(resolve_storage(args.storage), args.study_name, args.out, show_images=not args.no_images,
                          artifacts=args.artifacts)
    print(f"report: {readme}")
    return 0


def confirm_command(args: argparse.Namespace) -> int:
    from study.store.storage import resolve_storage
    from study.winners.confirm import run_confirm

    return run_confirm(resolve_storage(args.storage), args.study_name, args.top, args.seeds, args.epochs,
                       args.patience, args.holdout, artifacts=args.artifacts)


def ensemble_command(args: argparse.Namespace) -> int:
    from study.store.storage import resolve_storage
    from study.winners.ensemble import run_ensemble

    result = run_ensemble(resolve_storage(args.storage), args.study_name, args.top, args.holdout, args.batch_size,
                          artifacts=args.artifacts)
    print(f"ensemble of {result['top']} (trials {', '.join(map(str, result['members']))}): test accuracy "
          f"{result['test_accuracy']:.4f} on {result['test_images']} images; the best trial alone "
          f"{result['best_test_accuracy']:.4f}")
    if "holdout_accuracy" in result:
        print(f"held-out: ensemble {result['holdout_accuracy']:.4f}, best trial {result['best_holdout_accuracy']:.4f} "
              f"on {result['holdout_images']} images; lead {100 * result['lead']:+.2f} points, 95% interval "
              f"[{100 * result['lead_low']:+.2f}, {100 * result['lead_high']:+.2f}], McNemar p = "
              f"{result['mcnemar_p']:.3g}")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from study.report.compare import compare_studies
    from study.store.storage import resolve_storage

    figure, rows = compare_studies(resolve_storage(args.storage), args.studies, args.out)
    print("| study | trials | wall time (s) | best | best within the shorter wall time |")
    print("| :-- | --: | --: | --: | --: |")
    for label, trials, wall, best, within in rows:
        best_text = f"{best:.4f}" if best is not None else "-"
        within_text = f"{within:.4f}" if within is not None else "-"
        print(f"| {label} | {trials} | {wall:.0f} | {best_text} | {within_text} |")
    print(f"figure: {figure}")
    return 0


def dashboard_command(args: argparse.Namespace) -> int:
    from study.store.dashboard import serve_dashboard
    from study.store.storage import resolve_storage

    return serve_dashboard(resolve_storage(args.storage), args.host, args.port, artifacts=args.artifacts)


def export_command(args: argparse.Namespace) -> int:
    from study.report.trials_export import export_study
    from study.store.storage import resolve_storage

    text = export_study(resolve_storage(args.storage), args.study_name, args.format)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def export_model_command(args: argparse.Namespace) -> int:
    from study.markdown_text import size
    from study.store.storage import resolve_storage
    from study.winners.export_model import check_request, export_model

    check_request(args.format, args.quantize, args.out)
    result = export_model(resolve_storage(args.storage), args.study_name, args.trial, args.format, args.quantize,
                          args.out, artifacts=args.artifacts, data_dir=args.data)
    kind = args.format + ("" if args.quantize == "none" else f" {args.quantize}")
    keras_size = f" (the .keras model: {size(result['keras_bytes'])})" if result["keras_bytes"] else ""
    runner = {"tflite": "TFLite interpreter", "saved_model": "SavedModel serve", "keras": "Keras"}[args.format]
    print(f"exported trial {result['trial']} ({result['source']}) as {kind}: {args.out}")
    print(f"size: {size(result['bytes'])}{keras_size}")
    if result["accuracy"] is not None:
        print(f"test accuracy: {result['accuracy']:.4f} ({runner}, {result['n_images']} images), "
              f"Keras model {result['keras_accuracy']:.4f}")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from study.demo import run_demo

    return run_demo()


COMMANDS = {"run": run_command, "evaluate": evaluate_command, "report": report_command,
            "confirm": confirm_command, "ensemble": ensemble_command,
            "compare": compare_command, "dashboard": dashboard_command, "export": export_command,
            "export-model": export_model_command,
            "demo": demo_command}


TRAINING_COMMANDS = ("run", "confirm", "demo")
MODEL_READING_COMMANDS = ("evaluate", "ensemble", "export-model")


def choose_backend(args: argparse.Namespace) -> None:
    """Fix the Keras backend before anything imports Keras: the one asked for by a command that
    trains, any installed one for a command that only loads saved models."""
    from study import backends

    if args.command in TRAINING_COMMANDS:
        backends.activate(args.backend)
    elif args.command == "export-model" and args.format in ("saved_model", "tflite") \
            and backends.is_installed("tensorflow"):
        backends.activate("tensorflow")  # SavedModel and TFLite are TensorFlow's formats
    elif args.command in MODEL_READING_COMMANDS:
        backends.activate_for_reading(recorded_backend(args))


def recorded_backend(args: argparse.Namespace) -> str | None:
    """The Keras backend the study named on the command line trained on, when it says; None when
    it does not or cannot be read here (the command itself then says what is wrong)."""
    from study.store.record import StudyKey
    from study.store.storage import load_study, resolve_storage

    study_name = args.study_name or (args.data.resolve().name if getattr(args, "data", None) else None)
    if not study_name:
        return None
    try:
        return load_study(resolve_storage(args.storage), study_name).user_attrs.get(StudyKey.KERAS_BACKEND)
    except StudyError:
        return None


def command_line() -> str:
    from study.store.storage import mask_password

    return mask_password(" ".join(shlex.quote(a) for a in ["python", "-m", "study", *sys.argv[1:]]))


def main(argv: list[str] | None = None, filter_stderr: bool = False) -> int:
    """Parse `argv`, run the sub-command, return its exit code.

    `filter_stderr` (set by `python -m study`) hides TensorFlow's native log lines on fd 2 for
    this process and its workers, unless `--verbose`.
    """
    interrupts.install()  # SIGTERM (a scheduler, `kill`) ends the run like Ctrl-C
    args = build_parser().parse_args(argv)
    quiet.set_verbose(args.verbose)
    quiet.quiet_python_warnings()
    if filter_stderr:
        quiet.filter_native_stderr()
    try:
        choose_backend(args)
        return COMMANDS[args.command](args)
    except StudyError as error:
        print(f"study: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a full disk or a read-only folder while writing results
        from study.store.storage import mask_password

        where = f" '{error.filename}'" if error.filename else ""
        print(f"study: error: cannot use{where}: {mask_password(error.strerror or str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("study: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
