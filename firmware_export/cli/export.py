"""edge-export: a .tflite -> a TFLite Micro firmware project with a planned tensor arena."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.common import (
    EXIT_OK,
    add_boards_dir_arg,
    add_logging_args,
    configure_logging,
    print_json,
    run_command,
)
from firmware_export.export import OFFLINE_CHOICES, ExportResult, export_model
from firmware_export.plan.arena import DEFAULT_MARGIN

PROG = "edge-export"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a PlatformIO project that runs MODEL on a microcontroller board with "
                    "TensorFlow Lite Micro: model_data.cc/.h, op_resolver.h, arena.h (the arena "
                    "sized from a reproduction of TFLM's memory planner), main.cpp streaming "
                    "labels over serial.",
        epilog="examples:\n  edge-export person_detect.tflite --board nano33ble --out fw\n"
               "  edge-export model.tflite --board esp32s3 --out fw --verify --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="path of an int8 .tflite file")
    parser.add_argument("--board", required=True, help="microcontroller board profile name")
    parser.add_argument("--out", required=True, help="project folder to create or replace")
    parser.add_argument("--name", help="C identifier of the model array (default: from the "
                        "file name, e.g. g_person_detect_model)")
    parser.add_argument("--verify", action="store_true", help="check the predicted arena and the "
                        "outputs on the real TFLite Micro (pip tflite-micro, in a subprocess)")
    parser.add_argument("--offline-plan", choices=OFFLINE_CHOICES, default="auto",
                        help="auto: write a better-than-greedy tensor placement into the model "
                        "when one exists (default); off: leave placement to TFLM")
    parser.add_argument("--tflm", action="append", default=[], metavar="DIR",
                        help="a TFLM source tree (output of TFLM's create_tflm_tree.py): copy "
                        "the files the model needs into lib/tflm/ so the project builds offline "
                        "with exactly that TFLM; repeat it to give a CMSIS-NN tree too (the one "
                        "matching the board's kernels is copied). Default: platformio.ini pins "
                        "the board's TFLM library")
    parser.add_argument("--model-slot", action="store_true", help="build the firmware to boot "
                        "from the board's model slot (EDGE_USE_MODEL_SLOT) and write the slot "
                        "image model_slot.img into the project; the embedded fallback model "
                        "then gets the flash map's model part only (without it, there is no "
                        "slot and the model gets the model and slot parts)")
    parser.add_argument("--margin", type=int, default=DEFAULT_MARGIN, metavar="BYTES",
                        help=f"bytes added to the predicted arena (default {DEFAULT_MARGIN})")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_boards_dir_arg(parser)
    add_logging_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    result = export_model(args.model, args.board, args.out, name=args.name,
                          offline_plan=args.offline_plan, margin=args.margin,
                          boards_dirs=args.boards_dir, tflm=args.tflm,
                          model_slot=args.model_slot)
    report: dict[str, Any] = result.to_dict()
    verified = None
    if args.verify:
        from firmware_export.verify import verify

        verified = verify(result.model, result.model_path)
        report["verify"] = verified.to_dict()
    if args.json:
        print_json(report)
    else:
        _print_summary(result, verified)
    return EXIT_OK


def _print_summary(result: ExportResult, verified: Any) -> None:
    arena, budget = result.arena, result.budget
    print(f"wrote {result.out}/ ({len(result.files)} files) for {budget.board}")
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
        print(f"verify (x86-64 tflite-micro, reference kernels): predicted {verified.predicted:,}"
              f" B, measured {verified.measured:,} B ({verified.error:+.2%})")
        agree = verified.agreement
        if agree is not None and agree.note:
            print(f"verify outputs: {agree.note}")
        elif agree is not None:
            print(f"verify outputs vs LiteRT on {agree.inputs} inputs: top-1 "
                  f"{'identical' if agree.top1_identical else 'DIFFERENT'}, max "
                  f"{agree.max_lsb} LSB")


if __name__ == "__main__":
    raise SystemExit(main())
