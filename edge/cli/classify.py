"""edge-classify: label image files with a TFLite model of any kind (classifier, detector,
segmenter, pose), on the CPU or the Edge TPU."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS, get_board
from edge.camera.files import expand_images
from edge.camera.images import check_image_file, read_image
from edge.cli.arg_types import numbers, positive, unit
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
from edge.cli.kind_args import add_kind_args, decode_options_from_args
from edge.errors import ImageError, PreprocessError, one_line
from edge.events import CLASSIFY, DETECT, POSE, SEGMENT
from edge.runtime import Classification, Classifier
from edge.runtime.policy import open_classifier
from edge.runtime.postprocess import DecodeOptions, result_dict
from edge.runtime.preprocess import RESIZE_MODES, raw_input_tensor

if TYPE_CHECKING:
    from edge.cli.mask_files import MaskWriter

PROG = "edge-classify"
EXAMPLES = (
    "edge-classify --model mobilenet_v2_1.0_224_quant.tflite parrot.jpg --top-k 3",
    "edge-classify --model m.tflite photos/ 'shots/*.png'   # folders and globs",
    "edge-classify --model person_detect.tflite --backend tflm --raw-input person.bmp",
    "edge-classify --model m_edgetpu.tflite --device usb:0 --count 10 cat.jpg",
    "edge-classify --model m.tflite --json *.jpg | jq '.images[].results[0]'",
    "edge-classify --model yolov8n_int8.tflite --classes person,dog --threshold 0.4 street.jpg",
    "edge-classify --model deeplabv3.tflite --labels voc.txt --masks out/ photo.jpg",
    "edge-classify --model movenet.tflite --json portrait.jpg | jq '.images[0].keypoints'",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a .tflite model on images and print, per image file, what it found "
                    "and the inference time: the top classes of a classifier, the boxes of a "
                    "detector (SSD, YOLO, BlazeFace), the pixel share of each class of a "
                    "segmenter, the keypoints of a pose model, in the image's own pixels. The "
                    "kind is recognised from the model (--kind overrides). Labels come from "
                    "--labels, else from the model file itself, else from labels.txt beside it.")
    parser.add_argument("--model", required=True,
                        help="a .tflite model (Coral style model.tflite@usb:0 accepted)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders (their images, sorted by name) or quoted "
                             "glob patterns ('shots/*.jpg', 'data/**/*.png')")
    parser.add_argument("--labels", help="labels file (one per line, or 'index label' pairs); "
                        "default: the labels inside the model")
    parser.add_argument("--top-k", type=positive(int), default=3, metavar="K",
                        help="classes to print per image (default 3)")
    parser.add_argument("--threshold", type=unit, default=None,
                        help="print only classes, boxes or keypoints scoring at least this "
                             "(default: 0; detectors 0.25 YOLO, 0.5 BlazeFace, 0.4 SSD)")
    add_kind_args(parser)
    parser.add_argument("--masks", metavar="DIR",
                        help="segmenters: write, per image, DIR/NAME.mask.png (class index per "
                             "pixel at the image's size) and DIR/NAME.overlay.png (colours over "
                             "the image)")
    parser.add_argument("--count", type=positive(int), default=1, metavar="N",
                        help="invokes per image, for timing (default 1)")
    parser.add_argument("--resize", choices=RESIZE_MODES, default=None,
                        help="squash the whole image to the input (default, as Coral's "
                             "examples), centre-crop it to the input's aspect ratio first, or "
                             "letterbox it (aspect kept, grey borders; the default for YOLO)")
    parser.add_argument("--mean", type=numbers, default=None, metavar="M[,M,M]",
                        help="pixel mean(s) subtracted before scaling (default: by input type; "
                             "float models 127.5)")
    parser.add_argument("--std", type=numbers, default=None, metavar="S[,S,S]",
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
                         resize=args.resize, mean=args.mean, std=args.std,
                         kind=args.kind) as classifier:
        options = decode_options_from_args(args, args.top_k)
        masks = _mask_writer(args.masks) if classifier.kind.kind == SEGMENT else None
        reports = [{"image": str(image), "error": problem} if problem
                   else _label_file(classifier, image, args, options, masks)
                   for image, problem in checked]
        failures = [report["error"] for report in reports if "error" in report]
        if len(failures) < len(reports):  # nothing on stdout when no image could be read
            setup = _setup(classifier, args.raw_input)
            if args.json:
                print_json({"model": args.model, **setup, "images": reports})
            else:
                print(_format(args.model, setup, reports))
    return _report_failures(failures)


def _mask_writer(folder: str | None) -> MaskWriter | None:
    """The ``--masks`` writer, imported only when asked for (it draws with OpenCV)."""
    if not folder:
        return None
    from edge.cli.mask_files import MaskWriter

    return MaskWriter(folder)


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


def _label_file(classifier: Classifier, path: Path, args: argparse.Namespace,
                options: DecodeOptions, masks: MaskWriter | None) -> dict[str, Any]:
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
    outputs = classifier.run_outputs(tensor)
    times = [classifier.invoke_ms]
    for _ in range(args.count - 1):
        classifier.run_outputs(tensor)
        times.append(classifier.invoke_ms)
    size = (frame.shape[1], frame.shape[0])
    result = classifier.decode(outputs, size, options)
    report = {"image": str(path), **result_dict(result),
              "results": [_result(r) for r in result.predictions],
              "invoke_ms": {"first": times[0], "median": statistics.median(times),
                            "min": min(times), "count": len(times)}}
    if result.kind != CLASSIFY:
        report["width"], report["height"] = size
    if masks is not None:
        report.update(masks.write(path, frame, result, classifier.fit(size), classifier.labels))
    return report


def _setup(classifier: Classifier, raw_input: bool) -> dict[str, Any]:
    spec = classifier.input_spec
    return {"kind": classifier.kind.kind, "layout": classifier.kind.layout,
            "resize": "none" if raw_input else classifier.resize,
            "backend": classifier.backend_name, "threads": classifier.threads,
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
             f"{spec['dtype']} ({spec['conversion']}, {setup['resize']}), labels "
             f"{setup['labels'] or 'none'}, kind {setup['kind']} ({setup['layout']})"]
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
        lines.extend(_table(report))
    return "\n".join(lines)


def _table(report: dict[str, Any]) -> list[str]:
    """The rows of one image's result, as a table with a header for the kinds with columns."""
    kind = report["kind"]
    if kind == DETECT:
        rows = [f"  {d['score']:.4f}  {d['label'] or d['index']:<16} "
                + " ".join(f"{v:7.1f}" for v in d["box"]) for d in report["detections"]]
        header = f"  {'score':6}  {'label':<16} {'xmin':>7} {'ymin':>7} {'xmax':>7} {'ymax':>7}"
        empty = "  (no object scored at least the threshold)"
    elif kind == POSE:
        rows = [f"  {k['score']:.4f}  {k['name']:<16} {k['x']:7.1f} {k['y']:7.1f}"
                for k in report["keypoints"]]
        header = f"  {'score':6}  {'keypoint':<16} {'x':>7} {'y':>7}"
        empty = "  (no keypoint scored at least the threshold)"
    elif kind == SEGMENT:
        rows = [f"  {s['share']:6.1%}  {s['index']:>5}  {s['label']}" for s in report["segments"]]
        header = f"  {'pixels':>6}  {'index':>5}  label"
        empty = "  (no class left after --classes)"
    else:
        rows = [f"  {r['score']:.4f}  {r['index']:>5}  {r['label']}" for r in report["results"]]
        return rows or ["  (no class scored at least the threshold)"]
    return [header, *rows] if rows else [empty]


if __name__ == "__main__":
    raise SystemExit(main())
