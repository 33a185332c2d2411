"""edge-export: a .tflite -> a TFLite Micro firmware project with a planned tensor arena."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edge.cli.arg_types import byte_count
from edge.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_boards_dir_arg,
    add_common_args,
    add_logging_args,
    configure_logging,
    print_json,
    run_command,
)
from edge.errors import ExportError
from firmware_export.export import ExportResult, export_model
from firmware_export.patch.choose import DEFAULT_MAX_OVERHEAD, parse_patch
from firmware_export.plan.arena import DEFAULT_MARGIN
from firmware_export.plan.fit import OFFLINE_CHOICES
from firmware_export.tflm.tree import locate_tree

PROG = "edge-export"
EXAMPLES = (
    "edge-export person_detect.tflite --board nano33ble --out fw",
    "edge-export model.tflite --board esp32s3 --out fw --verify --json",
    "edge-export mobilenet_v2.tflite --board nano33ble --out fw --patch auto",
    "edge-export mobilenet_v2.tflite --board nano33ble --out fw --patch 3x3 --verify",
    "edge-export demo_model.tflite --board nano33ble --out fw --model-slot --fallback none",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a PlatformIO project that runs MODEL on a microcontroller board with "
                    "TensorFlow Lite Micro: model_data.cc/.h, op_resolver.h, arena.h (the arena "
                    "sized from a reproduction of TFLM's memory planner), main.cpp streaming "
                    "labels over serial.")
    parser.add_argument("model", help="path of an int8 .tflite file")
    parser.add_argument("--board", required=True, help="microcontroller board profile name")
    parser.add_argument("--out", required=True, help="project folder to create or replace")
    parser.add_argument("--name", help="C identifier of the model array (default: from the "
                        "file name, e.g. g_person_detect_model)")
    parser.add_argument("--verify", action="store_true", help="run the generated project on the "
                        "real TFLite Micro: the pip interpreter, a 64-bit host build and the "
                        "board's CPU under qemu-system-arm (needs --tflm or EDGE_TFLM_DIR)")
    parser.add_argument("--offline-plan", choices=OFFLINE_CHOICES, default="auto",
                        help="auto: write a better-than-greedy tensor placement into the model "
                        "when one exists (default); off: leave placement to TFLM")
    parser.add_argument("--tflm", action="append", default=[], metavar="DIR",
                        help="a TFLM source tree (output of TFLM's create_tflm_tree.py): copy "
                        "the files the model needs into lib/tflm/ so the project builds offline "
                        "with exactly that TFLM; repeat it to give a CMSIS-NN tree too (the one "
                        "matching the board's kernels is copied); --verify builds these trees "
                        "(else $EDGE_TFLM_DIR, several separated by ':'). Default: "
                        "platformio.ini pins the board's TFLM library")
    parser.add_argument("--model-slot", action="store_true", help="build the firmware to boot "
                        "from the board's model slot (EDGE_USE_MODEL_SLOT) and write the slot "
                        "image model_slot.img into the project; the embedded fallback model "
                        "then gets the flash map's model part only (without it, there is no "
                        "slot and the model gets the model and slot parts)")
    parser.add_argument("--fallback", choices=("embedded", "none"), default=None,
                        help="with --model-slot: 'embedded' (default) also links the model "
                        "into the model part and runs it when the slot holds no valid image; "
                        "'none' embeds no model and gives the slot the model and slot parts "
                        "both (a model twice as large can then be updated in place; with no "
                        "valid image the board reports why and waits)")
    parser.add_argument("--margin", type=byte_count, default=DEFAULT_MARGIN, metavar="BYTES",
                        help=f"bytes added to the predicted arena (default {DEFAULT_MARGIN})")
    parser.add_argument("--patch", default="off", metavar="MODE",
                        help="patch-based inference: rewrite the model's first stages to run "
                        "tile by tile (halos recomputed, outputs byte-identical) so the arena "
                        "shrinks; off (default), auto (search the cut and the grid for the "
                        "smallest arena within --max-overhead and say what was chosen) or a "
                        "grid RxC such as 3x3")
    parser.add_argument("--max-overhead", type=float, default=DEFAULT_MAX_OVERHEAD,
                        metavar="FRACTION", help="with --patch auto: the largest extra share "
                        "of multiply-adds the tiles may recompute (default "
                        f"{DEFAULT_MAX_OVERHEAD:g} = {DEFAULT_MAX_OVERHEAD * 100:.0f} %%)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_boards_dir_arg(parser)
    add_logging_args(parser)
    add_common_args(parser, EXAMPLES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.fallback is not None and not args.model_slot:
        raise ExportError("--fallback applies to --model-slot firmware only; add --model-slot "
                          "or drop --fallback")
    trees = [locate_tree(path) for path in args.tflm]  # a folder, or a .tar.gz unpacked once
    result = export_model(args.model, args.board, args.out, name=args.name,
                          offline_plan=args.offline_plan, margin=args.margin,
                          boards_dirs=args.boards_dir, tflm=[t.root for t in trees],
                          model_slot=args.model_slot, patch=parse_patch(args.patch),
                          max_overhead=args.max_overhead, fallback=args.fallback != "none")
    report: dict[str, Any] = result.to_dict()
    verified = None
    if args.verify:
        from firmware_export.verify.run import verify_result

        verified = verify_result(result, trees, args.boards_dir)
        report["verify"] = verified.to_dict()
    if args.json:
        print_json(report)
    else:
        _print_summary(result, verified)
    if verified is not None and not verified.ok:
        from firmware_export.verify.ladder import failure_line

        print(f"{PROG}: {failure_line(verified, str(args.model))}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _print_summary(result: ExportResult, verified: Any) -> None:
    arena, budget = result.arena, result.budget
    print(f"wrote {result.out}/ ({len(result.files)} files) for {budget.board}")
    if result.patch is not None:
        print(result.patch.summary())
    print(f"kTensorArenaSize = {arena.size:,} B = head {arena.plan.head:,} + tail "
          f"{arena.tail.total:,} + margin {arena.margin:,} (aligned); pointer size "
          f"{arena.pointer_size}, {arena.kernels} kernels")
    for name, size in arena.tail.parts.items():
        if size:
            print(f"  tail {name:<26} {size:>10,} B")
    print(f"TFLM: {'copied into lib/tflm' if result.library is None else result.library.title}")
    if result.slot_image is not None:
        print(f"slot image: {result.slot_image} ({budget.slot_image_bytes:,} of "
              f"{budget.slot_length:,} B of the model slot)")
    if result.offline is not None:
        print(f"offline plan ({result.offline.strategy} order): head {result.offline.head:,} B "
              f"instead of TFLM's greedy {result.offline.greedy_head:,} B")
    print(f"RAM for the arena: {budget.arena:,} of {budget.ram_for_arena:,} B "
          f"({budget.ram_left:,} B left); flash for the model: {budget.model_bytes:,} of "
          f"{budget.flash_for_model:,} B ({budget.flash_left:,} B left)")
    if verified is not None:
        for check in verified.checks:
            print(f"verify [{check.status}] {check.name} ({check.build}): {check.detail}")
        for note in verified.notes:
            print(f"verify note: {note}")

if __name__ == "__main__":
    raise SystemExit(main())
