"""The options of model kinds, shared by edge-classify and edge-run: ``--kind`` and what a
detector's results are filtered by."""

from __future__ import annotations

import argparse

from edge.cli.arg_types import positive, unit
from edge.events import KINDS
from edge.runtime.postprocess import DecodeOptions, parse_classes


def add_kind_args(group: argparse._ActionsContainer) -> None:
    """``--kind``, ``--iou``, ``--max-detections`` and ``--classes`` (``--threshold`` is each
    command's own: it also filters classes)."""
    group.add_argument("--kind", choices=KINDS, default=None,
                       help="what the model is, when its outputs do not say it clearly "
                            "(default: recognised from the model; docs/detect.md)")
    group.add_argument("--iou", type=unit, default=None, metavar="T",
                       help="detectors: boxes of a class overlapping a better one by more "
                            "than this are dropped (default: 0.45 YOLO, 0.3 BlazeFace; SSDs "
                            "do their own NMS)")
    group.add_argument("--max-detections", type=positive(int), default=100, metavar="N",
                       help="detectors: most boxes per image (default 100)")
    group.add_argument("--classes", default=None, metavar="LABEL[,LABEL]",
                       help="detectors and segmenters: keep only these labels (or class "
                            "indices), e.g. person,car")


def decode_options_from_args(args: argparse.Namespace, top_k: int) -> DecodeOptions:
    """The kind options of the command line as :class:`DecodeOptions`."""
    return DecodeOptions(top_k=top_k, threshold=args.threshold, iou=args.iou,
                         max_detections=args.max_detections,
                         classes=parse_classes(args.classes))
