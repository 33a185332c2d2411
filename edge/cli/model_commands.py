"""The bodies of ``edge-model``'s sub-commands: call the library, print what happened."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.cli.common import EXIT_INTERRUPTED, EXIT_OK, print_json
from edge.errors import LabelError

if TYPE_CHECKING:
    from edge.modelbuild.augment import Augmentation

PROG = "edge-model"
log = logging.getLogger("edge-model")
DEFAULT_SIZE = (0.35, 96)


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def build(args: argparse.Namespace) -> int:
    from edge.modelbuild.build import build_file

    model = build_file(args.alpha, args.resolution, args.classes, args.output,
                       weights=args.weights)
    _say(args, f"{args.output}: {model.name}, {model.count_params():,} parameters")
    return EXIT_OK


def _size(args: argparse.Namespace, classes: int) -> tuple[float, int, dict[str, object]]:
    """(alpha, resolution, record of the choice) from --board, --alpha/--resolution, the
    backbone file, or the defaults."""
    extra: dict[str, object] = {}
    alpha, resolution = DEFAULT_SIZE
    if args.board:
        from edge.boards import get_board
        from edge.modelbuild.sizing import choose_size

        # both overridden: the tiled plan (seconds per model) would choose nothing
        patch = args.alpha is None or args.resolution is None
        if patch:
            _say(args, f"--board {args.board}: planning the MobileNetV2 family untiled and "
                       "with --patch auto (about 15 s per model tried)")
        choice = choose_size(get_board(args.board, args.boards_dir), classes, patch=patch)
        alpha, resolution = choice.alpha, choice.resolution
        extra["board"] = {"name": args.board, **choice.to_dict()}
        _say(args, f"--board {args.board}: {choice.reason}")
    elif args.weights and str(args.weights).endswith(".keras"):
        from edge.modelbuild.keras_file import read_metadata

        record = read_metadata(Path(args.weights)) or {}
        alpha = float(record.get("architecture", {}).get("alpha", alpha))
    elif args.weights and str(args.weights).endswith(".tflite"):
        from edge.modelbuild.weights import tflite_alpha

        alpha = tflite_alpha(Path(args.weights))
    alpha = args.alpha if args.alpha is not None else alpha
    resolution = args.resolution if args.resolution is not None else resolution
    if args.board and (args.alpha is not None or args.resolution is not None):
        _say(args, f"--alpha/--resolution override: MobileNetV2 {alpha:g}/{resolution}")
    return alpha, resolution, extra


def _resolve_weights(args: argparse.Namespace, alpha: float, resolution: int,
                     per_class: int) -> str | None:
    """``--weights auto``: ImageNet when cached or reachable, else from scratch (with one
    warning line when the data is small for that)."""
    if args.weights != "auto":
        return str(args.weights) if args.weights is not None else None
    from edge.modelbuild.build import imagenet_file, imagenet_reachable
    from edge.modelbuild.train import SCRATCH_IMAGES_PER_CLASS

    if imagenet_file(alpha, resolution).is_file() or imagenet_reachable():
        return "imagenet"
    if per_class < SCRATCH_IMAGES_PER_CLASS:
        log.warning("no ImageNet weights (offline, none cached): training from scratch on %d "
                    "training images per class; from scratch wants about %d per class "
                    "unless the objects span a quarter of the frame or more, so for better "
                    "accuracy pass --weights mobilenet_v2_1.0_224_quant.tflite "
                    "(--alpha 1.0) or another MobileNetV2 .tflite or *_no_top.h5 file",
                    per_class, SCRATCH_IMAGES_PER_CLASS)
    return None


def _augmentation(args: argparse.Namespace, per_class: int) -> Augmentation:
    """Sized to the data (Augmentation.for_data), then what the user set."""
    from dataclasses import replace

    from edge.modelbuild.augment import Augmentation

    sized = Augmentation.for_data(per_class, flip=not args.no_flip)
    given = {"crop": args.crop, "rotate": args.rotate, "color": args.color,
             "brightness": args.brightness, "contrast": args.contrast}
    return replace(sized, **{k: v for k, v in given.items() if v is not None})


def train(args: argparse.Namespace) -> int:
    from edge.cli import model_detect

    if model_detect.is_detection(args):
        return model_detect.train(args)
    return _train_classifier(args)


def _train_classifier(args: argparse.Namespace) -> int:
    from edge.cli.progress import TrainingProgress
    from edge.modelbuild.dataset import SplitFractions, scan_folder
    from edge.modelbuild.train import TrainSettings, train_file
    from edge.pipeline.signals import stop_on_signals

    fractions = SplitFractions(args.val, args.test)
    folder = scan_folder(args.data, fractions)  # fails fast on a bad layout
    alpha, resolution, extra = _size(args, len(folder.classes))
    counts = folder.counts()
    per_class = min(counts["train"].values())
    weights = _resolve_weights(args, alpha, resolution, per_class)
    settings = TrainSettings(
        alpha=alpha, resolution=resolution, weights=weights, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        min_epochs=args.min_epochs,
        fractions=fractions, augmentation=_augmentation(args, per_class),
        class_weights=not args.no_class_weights, head_epochs=args.head_epochs,
        fine_tune_blocks=args.fine_tune_blocks, seed=args.seed)
    _say(args, f"{args.data}: {len(folder.classes)} classes, "
         + ", ".join(f"{sum(counts[s].values())} {s}" for s in ("train", "val", "test"))
         + f" images; MobileNetV2 {alpha:g}/{resolution}, weights {weights or 'none'}")
    stop = threading.Event()
    if not args.quiet:
        threading.Thread(target=_say_when_stopping, args=(args, stop), daemon=True).start()
    with stop_on_signals(stop):
        result = train_file(args.data, args.output, settings, extra=extra, stop=stop,
                            progress=None if args.quiet else TrainingProgress())
    _report_training(args, result)
    if args.json:
        print_json(result.metadata)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _say_when_stopping(args: argparse.Namespace, stop: threading.Event) -> None:
    """Say at once that Ctrl-C was heard: finishing the batch, measuring and saving can take
    a while on a busy machine."""
    stop.wait()
    newline = "\n" if sys.stderr.isatty() else ""  # after a progress bar drawn in place
    print(f"{newline}{PROG}: stopping after the batch in hand, then saving the best model so "
          "far (Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)


def _report_training(args: argparse.Namespace, result: object) -> None:
    from edge.modelbuild.train import SCRATCH_IMAGES_PER_CLASS, TrainResult, learned_little

    assert isinstance(result, TrainResult)
    if result.skipped:
        _say(args, f"skipped {len(result.skipped)} image(s) that cannot be decoded: "
             + ", ".join(result.skipped))
    why = ("interrupted" if result.interrupted else "stopped early (no better val accuracy)"
           if result.stopped_early else "all epochs run")
    _say(args, f"{args.output}: best val accuracy {result.best_val_accuracy:.1%} at epoch "
         f"{result.best_epoch} of {len(result.history)} ({why}); kept that model")
    classes = len(result.metadata["classes"])
    if learned_little(result.best_val_accuracy, classes):
        if result.metadata["architecture"]["weights"] == "none":
            advice = ("From scratch, MobileNetV2 0.35/96 learns objects that span a quarter of "
                      "the frame or more from 150 images per class; for smaller ones pass "
                      "--weights mobilenet_v2_1.0_224_quant.tflite (--alpha 1.0) or another "
                      f"pre-trained MobileNetV2, or give about {SCRATCH_IMAGES_PER_CLASS} images "
                      "per class (docs/train.md)")
        else:
            advice = ("Check that each class folder holds what its name says and that the "
                      "objects are visible at the model's input size (docs/train.md)")
        log.warning("%s: best val accuracy %.1f%% is nearer chance (%.1f%% for %d classes) "
                    "than 100%%: the model has not learned the objects. %s", args.output,
                    100 * result.best_val_accuracy, 100 / classes, classes, advice)
    if not result.interrupted:
        _say(args, f"next: {PROG} quantize {args.output}")


def _read_labels(path: Path | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    from edge.runtime.labels import read_labels

    labels = read_labels(path)
    if not all(labels):
        raise LabelError(f"{path}: has empty labels; give one label per line")
    return labels


def quantize(args: argparse.Namespace) -> int:
    from edge.cli.progress import CountBar
    from edge.modelbuild.quantize import quantize_file

    progress = None if args.quiet else CountBar("calibration images")
    result = quantize_file(args.model, args.output, args.representative, progress,
                           labels=_read_labels(args.labels),
                           max_image_pixels=args.max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS)
    labels = f"{len(result.labels)} labels embedded" if result.labels else "no labels"
    _say(args, f"{result.output}: int8, {result.size:,} bytes, {labels}; calibrated on "
         f"{result.calibration_images} images of {result.calibration}")
    if args.json:
        print_json({"output": str(result.output), "bytes": result.size,
                    "labels": list(result.labels), "calibration": result.calibration,
                    "calibration_images": result.calibration_images})
    return EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    from edge.cli import model_detect

    if model_detect.is_detector_model(args.model, args.tflite):
        return model_detect.evaluate(args)
    from edge.modelbuild.evaluate import evaluate as run_evaluation
    from edge.modelbuild.quantize import write_atomic
    from edge.modelbuild.report import confusion_png

    report = run_evaluation(args.model, args.data, tflite=args.tflite, micro=args.micro,
                            split=args.split)
    shown = report.scores[-1] if report.score("int8") is None else report.score("int8")
    assert shown is not None
    png = args.confusion or args.model.with_name(f"{args.model.stem}.confusion.png")
    write_atomic(png, confusion_png(shown.confusion, report.classes,
                                    f"{args.model.name}: {shown.name} on {report.images} "
                                    f"{report.split} images, accuracy {shown.accuracy:.1%}"))
    if args.json:
        print_json({**report.to_dict(), "confusion_png": str(png)})
        return EXIT_OK
    _print_evaluation(report, shown.name, png)
    return EXIT_OK


def _print_evaluation(report: object, shown: str, png: Path) -> None:
    from edge.modelbuild.evaluate import Evaluation, precision_recall
    from edge.modelbuild.report import confusion_text

    assert isinstance(report, Evaluation)
    print(f"{report.images} images of the {report.split} split"
          + (f" ({len(report.skipped)} undecodable skipped)" if report.skipped else ""))
    for s in report.scores:
        print(f"  {s.name:6} accuracy {s.accuracy:7.2%}")
    if report.int8_drop_points is not None:
        print(f"  int8 drop against float: {report.int8_drop_points:+.2f} points")
    score = report.score(shown)
    assert score is not None
    precision, recall = precision_recall(score.confusion)
    print(f"\nper class ({shown}):  precision  recall  images")
    for name, p, r, n in zip(report.classes, precision, recall, score.confusion.sum(axis=1),
                             strict=True):
        print(f"  {name:16} {_pct(p):>9} {_pct(r):>7} {int(n):7d}")
    print(f"\nconfusion matrix ({shown}; rows: true class, columns: predicted):")
    print(confusion_text(score.confusion, report.classes))
    print(f"\nsaved as {png}")


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.1%}"
