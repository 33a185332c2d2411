"""edge-classify: label image files with a TFLite classifier, on the CPU or the Edge TPU."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS, get_board
from edge.camera.files import expand_images
from edge.camera.images import check_image_file, read_image
from edge.cli.args import add_runtime_args, runtime_from_args
from edge.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_boards_dir_arg,
    add_common_args,
    add_logging_args,
    add_max_image_pixels_arg,
    configure_logging,
    print_json,
    run_command,
)
from edge.errors import ImageError, PreprocessError, one_line
from edge.runtime import Classification, Classifier
from edge.runtime.policy import open_classifier
from edge.runtime.postprocess import classify_scores
from edge.runtime.preprocess import RESIZE_MODES, raw_input_tensor

PROG = "edge-classify"
EXAMPLES = (
    "edge-classify --model mobilenet_v2_1.0_224_quant.tflite parrot.jpg --top-k 3",
    "edge-classify --model m.tflite photos/ 'shots/*.png'   # folders and globs",
    "edge-classify --model person_detect.tflite --backend tflm --raw-input person.bmp",
    "edge-classify --model m_edgetpu.tflite --device usb:0 --count 10 cat.jpg",
    "edge-classify --model m.tflite --json *.jpg | jq '.images[].results[0]'",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Classify images with a .tflite model and print, per image file, the top "
                    "classes with their scores and the inference time. Labels come from "
                    "--labels, else from the model file itself, else from labels.txt beside it.")
    parser.add_argument("--model", required=True,
                        help="a .tflite classifier (Coral style model.tflite@usb:0 accepted)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders (their images, sorted by name) or quoted "
                             "glob patterns ('shots/*.jpg', 'data/**/*.png')")
    parser.add_argument("--labels", help="labels file (one per line, or 'index label' pairs); "
                        "default: the labels inside the model")
    parser.add_argument("--top-k", type=_positive, default=3, metavar="K",
                        help="classes to print per image (default 3)")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="print only classes scoring at least this (default 0)")
    parser.add_argument("--count", type=_positive, default=1, metavar="N",
                        help="invokes per image, for timing (default 1)")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="squash",
                        help="squash the whole image to the input (default, as Coral's examples)"
                             " or centre-crop it to the input's aspect ratio first")
    parser.add_argument("--mean", type=_floats, default=None, metavar="M[,M,M]",
                        help="pixel mean(s) subtracted before scaling (default: by input type; "
                             "float models 127.5)")
    parser.add_argument("--std", type=_floats, default=None, metavar="S[,S,S]",
                        help="pixel standard deviation(s) (default: by input type; float "
                             "models 127.5)")
    parser.add_argument("--raw-input", action="store_true",
                        help="the image's bytes are the model's input values: fed as they are "
                             "(no resize, no normalization), each byte read as the input's "
                             "type (int8: 200 is -56); for test images that store quantized "
                             "pixels, like TFLM's person.bmp")
    add_max_image_pixels_arg(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    add_runtime_args(parser, board_default=None)
    add_boards_dir_arg(parser)
    add_common_args(parser, EXAMPLES)
    add_logging_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    board = get_board(args.board, args.boards_dir, kind="linux") if args.board else None
    max_pixels = DEFAULT_MAX_IMAGE_PIXELS
    if board is not None and board.runtime is not None:
        max_pixels = board.runtime.max_image_pixels
    args.max_image_pixels = args.max_image_pixels or max_pixels
    images = expand_images(args.images)  # before the interpreter starts (and logs to stderr)
    checked = [(image, _check(image, args.max_image_pixels)) for image in images]
    failures = [problem for _, problem in checked if problem]
    if len(failures) == len(checked):  # nothing to classify: no interpreter, nothing on stdout
        return _report_failures(failures)
    with open_classifier(args.model, runtime_from_args(args), board, labels=args.labels,
                         resize=args.resize, mean=args.mean, std=args.std) as classifier:
        reports = [{"image": str(image), "error": problem} if problem
                   else _classify_file(classifier, image, args) for image, problem in checked]
        reports = [_classify_file(classifier, image, args) for image in images]
        failures = [report["error"] for report in reports if "error" in report]
        if len(failures) < len(reports):  # nothing on stdout when no image could be read
            setup = _setup(classifier, args.raw_input)
            if args.json:
                print_json({"model": args.model, **setup, "images": reports})
            else:
                print(_format(args.model, setup, reports))
    return _report_failures(failures)


def _check(image: Path, max_pixels: int) -> str | None:
    """Why ``image`` cannot be read (its header checked, nothing decoded), or None."""
    try:
        check_image_file(image, max_pixels)
    except ImageError as e:
        return str(e)
    return None


def _report_failures(failures: list[str]) -> int:
    """One line on stderr per image that could not be classified; exit code 2 if any."""
    for failure in failures:
        print(one_line(f"{PROG}: error: {failure}"), file=sys.stderr)
    return EXIT_ERROR if failures else EXIT_OK


def _classify_file(classifier: Classifier, path: Path, args: argparse.Namespace
                   ) -> dict[str, Any]:
    """The report of one image; one whose input cannot be made gives ``{"image", "error"}``
    (the run goes on with the others)."""
    try:
        frame = read_image(path, max_pixels=args.max_image_pixels,
                           grayscale=classifier.input_spec.channels == 1)
        if args.raw_input:
            tensor = raw_input_tensor(frame, classifier.input_spec)
        else:
            tensor = classifier.preprocess(frame, color="bgr")
    except PreprocessError as e:
        return {"image": str(path), "error": str(e) if str(path) in str(e) else f"{path}: {e}"}
    scores = classifier.run(tensor)
    times = [classifier.invoke_ms]
    for _ in range(args.count - 1):
        classifier.run(tensor)
        times.append(classifier.invoke_ms)
    results = classify_scores(scores, classifier.labels, args.top_k, args.threshold)
    return {"image": str(path), "results": [_result(r) for r in results],
            "invoke_ms": {"first": times[0], "median": statistics.median(times),
                          "min": min(times), "count": len(times)}}


def _setup(classifier: Classifier, raw_input: bool) -> dict[str, Any]:
    spec = classifier.input_spec
    return {"backend": classifier.backend_name, "threads": classifier.threads,
            "delegate": classifier.delegate_name, "labels": classifier.labels_origin or None,
            "input": {"width": spec.width, "height": spec.height, "channels": spec.channels,
                      "dtype": spec.dtype,
                      "conversion": "raw bytes" if raw_input else spec.conversion}}


def _result(result: Classification) -> dict[str, Any]:
    return {"index": result.index, "label": result.label, "score": result.score}


def _format(model: str, setup: dict[str, Any], reports: list[dict[str, Any]]) -> str:
    spec = setup["input"]
    lines = [f"{Path(model).name}: {setup['backend']}, {setup['threads']} thread(s), delegate "
             f"{setup['delegate']}, input {spec['width']}x{spec['height']}x{spec['channels']} "
             f"{spec['dtype']} ({spec['conversion']}), labels {setup['labels'] or 'none'}"]
    for report in reports:
        if "error" in report:
            lines.append(f"{report['image']}: not classified (see the error below)")
            continue
        times = report["invoke_ms"]
        timing = f"{times['first']:.2f} ms"
        if times["count"] > 1:
            timing = (f"{times['median']:.2f} ms median of {times['count']} (first "
                      f"{times['first']:.2f}, min {times['min']:.2f})")
        lines.append(f"{report['image']}: invoke {timing}")
        for r in report["results"]:
            lines.append(f"  {r['score']:.4f}  {r['index']:>5}  {r['label']}")
        if not report["results"]:
            lines.append("  (no class scored at least the threshold)")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"(={value}) must be at least 1")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated "
                                         "numbers") from None


if __name__ == "__main__":
    raise SystemExit(main())
