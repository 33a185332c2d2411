"""edge-model: build MobileNetV2 variants and quantize them to full-integer int8.

    edge-model build --alpha 0.35 --resolution 96 --classes 11 out.keras
    edge-model quantize out.keras --representative images/ out.tflite
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.cli.common import (
    EXIT_OK,
    add_logging_args,
    add_max_image_pixels_arg,
    configure_logging,
    run_command,
)
from edge.modelbuild.build import ALPHAS, MIN_RESOLUTION

PROG = "edge-model"


def _weights(value: str) -> str | None:
    if value.lower() == "none":
        return None
    if value.lower() == "imagenet":
        return "imagenet"
    raise argparse.ArgumentTypeError(f"--weights (={value}) must be none or imagenet")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_logging_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a MobileNetV2 classifier taking raw pixels")
    build.add_argument("--alpha", type=float, required=True,
                       help=f"width multiplier: {', '.join(str(a) for a in ALPHAS)}")
    build.add_argument("--resolution", type=int, required=True,
                       help=f"square input side in pixels (>= {MIN_RESOLUTION})")
    build.add_argument("--classes", type=int, required=True, help="number of classes")
    build.add_argument("--weights", type=_weights, default=None,
                       help="none (random, default) or imagenet (needs a download)")
    build.add_argument("output", type=Path, metavar="OUT.keras")
    quantize = sub.add_parser("quantize", help="full-integer int8 post-training quantization")
    quantize.add_argument("model", type=Path, metavar="MODEL.keras")
    quantize.add_argument("--representative", type=Path, nargs="+", required=True,
                          metavar="DIR|FILE", help="calibration images or folders of them")
    quantize.add_argument("output", type=Path, nargs="?", metavar="OUT.tflite")
    add_max_image_pixels_arg(quantize)
    return parser


class ProgressBar:
    """A one-line progress bar on stderr."""

    def __init__(self, what: str, width: int = 30) -> None:
        self.what = what
        self.width = width

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done >= total else ""
        print(f"\r[{bar}] {done}/{total} {self.what}", end=end, file=sys.stderr, flush=True)


def _split_output(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Path:
    """OUT.tflite may be swallowed by --representative's list; take it back from there."""
    if args.output is not None:
        return Path(args.output)
    if len(args.representative) >= 2 and args.representative[-1].suffix == ".tflite":
        return Path(args.representative.pop())
    parser.error("quantize needs an OUT.tflite path")
    raise AssertionError  # parser.error exits


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if args.command == "build":
        return run_command(PROG, lambda: _build(args))
    output = _split_output(args, parser)
    return run_command(PROG, lambda: _quantize(args, output))


def _build(args: argparse.Namespace) -> int:
    from edge.modelbuild.build import build_file

    model = build_file(args.alpha, args.resolution, args.classes, args.output,
                       weights=args.weights)
    if not args.quiet:
        print(f"{args.output}: {model.name}, {model.count_params():,} parameters",
              file=sys.stderr)
    return EXIT_OK


def _quantize(args: argparse.Namespace, output: Path) -> int:
    from edge.modelbuild.quantize import quantize_file

    progress = None if args.quiet else ProgressBar("calibration images")
    flatbuffer = quantize_file(args.model, args.representative, output, progress,
                               max_image_pixels=args.max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS)
    if not args.quiet:
        print(f"{output}: int8, {len(flatbuffer):,} bytes", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
