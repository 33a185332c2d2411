"""``edge-model train --task detect`` and ``edge-model evaluate`` of a detector: the bodies."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from edge.cli.common import EXIT_INTERRUPTED, EXIT_OK, print_json
from edge.errors import TrainingError

PROG = "edge-model"
DETECT = "detect"


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def is_detection(args: argparse.Namespace) -> bool:
    """``--task detect``, or no --task and DATA in the YOLO layout."""
    from edge.modelbuild.yolo_layout import is_yolo_layout

    task = getattr(args, "task", None)
    if task is not None:
        return bool(task == DETECT)
    return is_yolo_layout(args.data)


def is_detector_model(model: Path, tflite: Path | None) -> bool:
    from edge.modelbuild.evaluate_detect import is_detector_record, model_record

    return any(is_detector_record(model_record(p)) for p in (model, tflite) if p is not None)


def _weights(args: argparse.Namespace) -> str | None:
    """A detector's ``--weights``: auto means from scratch (no download is tried: the
    measured runs in docs/train.md train the small detector from scratch)."""
    weights = args.weights
    return None if weights in (None, "auto") else str(weights)


def _size(args: argparse.Namespace, classes: int, image_size: tuple[int, int]
          ) -> tuple[float, tuple[int, int], dict[str, object]]:
    from edge.modelbuild.train_detect import DEFAULT_ALPHA, DEFAULT_WIDTH, size_for_aspect

    extra: dict[str, object] = {}
    alpha = DEFAULT_ALPHA
    size: tuple[int, int] | None = None
    if args.board:
        from edge.boards import get_board
        from edge.modelbuild.detect_sizing import choose_detector_size

        choice = choose_detector_size(get_board(args.board, args.boards_dir), classes,
                                      image_size)
        alpha, size = choice.alpha, choice.size
        extra["board"] = {"name": args.board, **choice.to_dict()}
        _say(args, f"--board {args.board}: {choice.reason}")
    if args.alpha is not None:
        alpha = args.alpha
    if args.input_size is not None:
        size = args.input_size
    elif args.resolution is not None:
        size = (args.resolution, args.resolution)
    return alpha, size or size_for_aspect(DEFAULT_WIDTH, image_size), extra


def train(args: argparse.Namespace) -> int:
    from edge.cli.progress import TrainingProgress
    from edge.modelbuild.dataset import SplitFractions
    from edge.modelbuild.keras_file import check_output
    from edge.modelbuild.train import save_trained
    from edge.modelbuild.train_detect import DetectSettings, image_size_of, train_detector
    from edge.modelbuild.yolo_layout import scan_yolo
    from edge.pipeline.signals import stop_on_signals

    check_output(args.output)
    fractions = SplitFractions(args.val, args.test)
    data = scan_yolo(args.data, fractions)  # fails fast on a bad layout
    if data.problems:
        _say(args, f"{len(data.problems)} label file(s) with problems, their images skipped "
             f"(listed above); first: {data.problems[0]}")
    alpha, size, extra = _size(args, len(data.classes), image_size_of(data))
    settings = DetectSettings(
        alpha=alpha, size=size, weights=_weights(args), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        min_epochs=args.min_epochs, fractions=fractions, object_weight=args.object_weight,
        seed=args.seed)
    counts = {s: len(data.split(s)) for s in ("train", "val", "test")}
    objects = ", ".join(f"{n} {c}" for c, n in data.objects().items())
    _say(args, f"{args.data}: {len(data.classes)} classes ({objects} objects), "
         + ", ".join(f"{n} {s}" for s, n in counts.items())
         + f" images; centroid detector MobileNetV2 {alpha:g} cut at stride 8, input "
         f"{size[0]}x{size[1]} (grid {size[0] // 8}x{size[1] // 8}), weights "
         f"{settings.weights or 'none'}")
    stop = threading.Event()
    with stop_on_signals(stop):
        result = train_detector(data, settings, stop=stop,
                                progress=None if args.quiet else TrainingProgress())
    result = save_trained(result, args.output, extra)
    metadata = result.metadata
    if result.skipped:
        _say(args, f"skipped {len(result.skipped)} image(s) that cannot be decoded: "
             + ", ".join(result.skipped))
    why = ("interrupted" if result.interrupted else "stopped early (no better val F1)"
           if result.stopped_early else "all epochs run")
    _say(args, f"{args.output}: best val centroid F1 {result.best_val_accuracy:.1%} at epoch "
         f"{result.best_epoch} of {len(result.history)}, threshold {metadata['threshold']} "
         f"({why}); kept that model")
    if not result.interrupted:
        _say(args, f"next: {PROG} quantize {args.output}; {PROG} evaluate {args.output} "
             f"{args.data}")
    if args.json:
        print_json(metadata)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def evaluate(args: argparse.Namespace) -> int:
    from edge.modelbuild.evaluate_detect import evaluate_detector

    if getattr(args, "micro", False):
        raise TrainingError("--micro is for classifiers; a detector runs on TFLite Micro "
                            "through edge-export --verify")
    report = evaluate_detector(args.model, args.data, tflite=args.tflite, split=args.split,
                               threshold=args.threshold)
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK
    cell_w, cell_h = report.cell_pixels
    print(f"{report.images} images of the {report.split} split, {report.objects} objects"
          + (f" ({len(report.skipped)} undecodable skipped)" if report.skipped else ""))
    print(f"a detection counts when its centre lies within {report.distance_cells:g} cells "
          f"(a cell is {cell_w:g}x{cell_h:g} image pixels) of an unmatched object of its "
          f"class; threshold {report.threshold:g}")
    for result in report.results:
        print(f"\n{result.name}:            precision  recall     F1   tp   fp   fn")
        for name, s in [*zip(report.classes, result.scores, strict=False),
                        ("all", result.overall)]:
            print(f"  {name:16} {s.precision:9.1%} {s.recall:7.1%} {s.f1:6.1%} {s.tp:4d} "
                  f"{s.fp:4d} {s.fn:4d}")
    return EXIT_OK
