"""edge-model: train, quantize and evaluate MobileNetV2 classifiers for your own images.

    edge-model train DATA model.keras --board nano33ble     # DATA/<class>/*.jpg
    edge-model train DATA model.keras --alpha 1.0 --weights mobilenet_v2_1.0_224_quant.tflite
    edge-model quantize model.keras                          # -> model.tflite, labels inside
    edge-model evaluate model.keras DATA --micro             # float, int8, TFLite Micro
    edge-model build --alpha 0.35 --resolution 96 --classes 11 untrained.keras
    edge-model train SHAPES detector.keras --task detect   # SHAPES/images, SHAPES/labels
    edge-model evaluate detector.keras SHAPES             # centroid precision, recall, F1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.cli.arg_types import fraction
from edge.cli.common import (
    add_boards_dir_arg,
    add_common_args,
    add_logging_args,
    add_max_image_pixels_arg,
    configure_logging,
    run_command,
)
from edge.modelbuild.build import ALPHAS, MIN_RESOLUTION
from edge.modelbuild.train import (
    HEAD_EPOCHS,
    HEAD_LEARNING_RATE,
    HEAD_MIN_STEPS,
    PRETRAINED_EPOCHS,
    SCRATCH_EPOCHS,
    SCRATCH_LARGER_BELOW,
    SCRATCH_LARGER_SHARE,
    SCRATCH_LEARNING_RATE,
    SCRATCH_MIN_STEPS,
)

PROG = "edge-model"


AUTO = "auto"


def _weights(value: str) -> str | None:
    """``none``, ``imagenet``, ``auto``, or a path (kept as given)."""
    if value.lower() == "none":
        return None
    if value.lower() in ("imagenet", AUTO):
        return value.lower()
    return value


def _add_size_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--alpha", type=float, required=required,
                   help=f"width multiplier: {', '.join(str(a) for a in ALPHAS)}")
    p.add_argument("--resolution", type=int, required=required,
                   help=f"square input side in pixels (>= {MIN_RESOLUTION}; ImageNet weights "
                        "exist for 96, 128, 160, 192, 224)")


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a classifier on DATA/<class>/ images, or a "
                       "centroid detector on a YOLO-layout DATA",
                       description="Train MobileNetV2 on a folder with one sub-folder per "
                                   "class, or (--task detect) a centroid detector on a "
                                   "YOLO-layout folder (images/, labels/, classes.txt).")
    p.add_argument("data", type=Path, metavar="DATA",
                   help="folder of class folders, or of images/ and labels/ (YOLO layout)")
    p.add_argument("output", type=Path, metavar="OUT.keras", help="Keras model to write")
    p.add_argument("--board", help="choose the largest MobileNetV2 that fits this board, "
                   "untiled or exported with --patch auto (--alpha/--resolution override)")
    add_boards_dir_arg(p)
    _add_size_args(p, required=False)
    p.add_argument("--weights", type=_weights, default=AUTO,
                   metavar="auto|none|imagenet|PATH",
                   help="auto (default): ImageNet weights when cached or downloadable, else "
                        "from scratch; none (from scratch); imagenet (Keras download, cached); "
                        "or a backbone: a Keras *_no_top.h5 file, a .keras model from "
                        "edge-model, or a quantized MobileNetV2 .tflite (e.g. "
                        "mobilenet_v2_1.0_224_quant.tflite; its width is the default --alpha)")
    p.add_argument("--epochs", type=int,
                   help=f"most epochs (default: from scratch, enough for {SCRATCH_MIN_STEPS:,} "
                        f"steps, {SCRATCH_EPOCHS[0]}-{SCRATCH_EPOCHS[1]}, and below "
                        f"--resolution {SCRATCH_LARGER_BELOW} the first "
                        f"{SCRATCH_LARGER_SHARE * 100:.0f}%% "
                        "of them at a third larger input, where small objects learn; with "
                        f"pre-trained weights {PRETRAINED_EPOCHS})")
    p.add_argument("--patience", type=int,
                   help="stop after N epochs without progress of the smoothed val accuracy "
                        "or loss (default: a tenth of the epochs, at least 5)")
    p.add_argument("--min-epochs", type=int,
                   help="never stop before this epoch (default: a third of the epochs from "
                        "scratch; head epochs + 3 with pre-trained weights)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    p.add_argument("--learning-rate", type=float,
                   help=f"peak rate (default: {SCRATCH_LEARNING_RATE:g} from scratch, "
                        f"{HEAD_LEARNING_RATE:g} for a new head)")
    p.add_argument("--head-epochs", type=int,
                   help="pre-trained weights: epochs training only the new head (default: "
                        f"enough for {HEAD_MIN_STEPS} steps, {HEAD_EPOCHS[0]}-{HEAD_EPOCHS[1]})")
    p.add_argument("--fine-tune-blocks", type=int, default=3,
                   help="pre-trained weights: last blocks fine-tuned after that (default: 3)")
    p.add_argument("--val", type=fraction, default=0.1, help="validation share (default 0.1)")
    p.add_argument("--test", type=fraction, default=0.1, help="held-out share (default 0.1)")
    p.add_argument("--no-flip", action="store_true",
                   help="no horizontal flips (for text, digits, arrows)")
    p.add_argument("--crop", type=float,
                   help="random crops keep at least this share of each side (1 = off; "
                        "default 0.85, 0.8 below 1,000 images per class)")
    p.add_argument("--rotate", type=float,
                   help="random turns up to this many degrees (0 = off; default 0, 15 below "
                        "1,000 images per class, with shifts and zoom-outs)")
    p.add_argument("--color", type=float,
                   help="max change of each colour channel's gain and of saturation (0 = off; "
                        "default 0, 0.2 below 1,000 images per class)")
    p.add_argument("--brightness", type=float, default=0.15, help="max brightness change")
    p.add_argument("--contrast", type=float, default=0.2, help="max contrast change")
    p.add_argument("--no-class-weights", action="store_true",
                   help="do not weight classes by their inverse frequency")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, shuffling and weights (default: 0)")
    p.add_argument("--json", action="store_true", help="print the training record as JSON")
    _add_detect_args(p)


def _input_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT, e.g. 128x96 (got {text})"
                                         ) from None
    return width, height


def _add_detect_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detection (--task detect: object centres, YOLO-layout DATA)")
    g.add_argument("--task", choices=["classify", "detect"],
                   help="classify (DATA/<class>/ images) or detect (DATA/images/ and "
                        "DATA/labels/, the YOLO layout); default: detect when DATA has the "
                        "YOLO layout, else classify")
    g.add_argument("--input-size", type=_input_size, metavar="WxH",
                   help="detector input, both sides multiples of 8 (default: 128 wide with "
                        "the images' aspect, e.g. 128x96 for 4:3; --resolution R means RxR)")
    g.add_argument("--object-weight", type=float, default=20.0,
                   help="loss weight of a cell holding an object's centre against a "
                        "background cell (default: 20)")


def _add_quantize(sub: Any) -> None:
    p = sub.add_parser("quantize", help="full-integer int8 post-training quantization",
                       usage=f"{PROG} quantize [-h] [--representative DIR|FILE]... "
                             "[--labels FILE] [--json] [--max-image-pixels N] MODEL.keras "
                             "[OUT.tflite]")
    p.add_argument("model", type=Path, metavar="MODEL.keras", help="float Keras model to quantize")
    p.add_argument("output", type=Path, nargs="?", metavar="OUT.tflite",
                   help="default: MODEL.tflite beside the model")
    p.add_argument("--representative", type=Path, action="append", default=[],
                   metavar="DIR|FILE", help="calibration images or a folder of them "
                   "(repeatable); default: the training split the model was trained on")
    p.add_argument("--labels", type=Path, help="labels to embed (default: the model's classes)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_max_image_pixels_arg(p)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="accuracy of the float, int8 and TFLite Micro models")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="the .keras model (its .tflite beside it is found) or a .tflite")
    p.add_argument("data", type=Path, metavar="DATA",
                   help="folder of class folders (a detector: the YOLO layout)")
    p.add_argument("--tflite", type=Path, help="the int8 model (default: MODEL.tflite)")
    p.add_argument("--micro", action="store_true",
                   help="also run the int8 model on TFLite Micro (pip tflite-micro)")
    p.add_argument("--split", choices=["test", "val", "train", "all"], default="test",
                   help="which images (default: the held-out test split)")
    p.add_argument("--threshold", type=float,
                   help="detectors: least cell score (default: the one training chose)")
    p.add_argument("--confusion", type=Path, metavar="PNG",
                   help="where to save the confusion matrix (default: beside the model)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_build(sub: Any) -> None:
    p = sub.add_parser("build", help="build an untrained MobileNetV2 classifier")
    _add_size_args(p, required=True)
    p.add_argument("--classes", type=int, required=True, help="number of classes")
    p.add_argument("--weights", type=_weights, default=None, metavar="none|imagenet|PATH",
                   help="backbone weights (default: none)")
    p.add_argument("output", type=Path, metavar="OUT.keras", help="Keras model to write")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_logging_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_quantize, _add_evaluate, _add_build):
        add(sub)
    examples = [line.strip() for line in __doc__.splitlines()[1:] if line.strip()]
    for name, command in sub.choices.items():
        add_common_args(command, [e for e in examples if e.startswith(f"{PROG} {name} ")])
        # -v/-q after the sub-command too; SUPPRESS keeps a value given before it.
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                             help="more log output on stderr (repeat for debug)")
        command.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                             help="less output on stderr: status lines and warnings off")
    add_common_args(parser, examples)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; ``quantize M --representative D OUT`` works too (argparse alone would take M and
    an empty OUT together, then find OUT left over)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "quantize" and args.output is None and len(extra) == 1 \
            and not extra[0].startswith("-"):
        args.output, extra = Path(extra[0]), []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    configure_logging(args.verbose, args.quiet)
    from edge.cli import model_commands

    body = {"build": model_commands.build, "train": model_commands.train,
            "quantize": model_commands.quantize, "evaluate": model_commands.evaluate}
    return run_command(PROG, lambda: body[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
