"""edge-flash: put a model (and/or firmware) onto a microcontroller board.

    edge-flash MODEL --board B --port P [--labels FILE] [--firmware DIR] [--arena-size N]
               [--dry-run] [--json]
    edge-flash --firmware BUILD_DIR_OR_FILE --board B [--port P]
    edge-flash MODEL --board B --output model.uf2        (write the image, do not flash)
    edge-flash --list-ports
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.boards import load_boards
from edge.cli.arg_types import byte_count
from edge.cli.common import (
    EXIT_OK,
    add_boards_dir_arg,
    add_common_args,
    add_logging_args,
    configure_logging,
    print_json,
    run_command,
)
from edge.errors import FlashError
from firmware_export.flash import ports
from firmware_export.flash.request import FlashRequest, FlashResult, flash

PROG = "edge-flash"
EXAMPLES = (
    "edge-flash --list-ports",
    "edge-flash model.tflite --board esp32s3 --port /dev/ttyACM0 --arena-size 85264 --dry-run",
    "edge-flash model.tflite --board pico --arena-size 85264 -o model.uf2   # write, don't flash",
    "edge-flash --firmware fw/ --board esp32s3 --port /dev/ttyACM0",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Write a model image into an MCU board's model slot (no firmware "
        "rebuild; the firmware must be exported with edge-export --model-slot), flash exported "
        "firmware with the board's own tool, or list serial ports.")
    parser.add_argument("model", nargs="?", type=Path, help=".tflite model for a model-only update")
    parser.add_argument("--board", help="MCU board profile name (see boards/*.toml)")
    parser.add_argument("--port", help="serial port (esptool, bossac), probe UID (pyocd) or a "
                        "mounted UF2 boot drive (RP2040)")
    parser.add_argument("--labels", type=Path, help="labels file, one per line, index = class")
    parser.add_argument("--arena-size", type=byte_count, metavar="N",
                        help="tensor arena bytes the model needs (default: what edge-export "
                        "plans for the board); refused above the --firmware project's "
                        "kTensorArenaSize")
    parser.add_argument("--firmware", type=Path, metavar="BUILD",
                        help="firmware file, build folder or exported project (whose "
                        "edge-export.json gives the arena size and board the image is checked "
                        "against)")
    parser.add_argument("--fallback", choices=("embedded", "none"),
                        help="the firmware's layout: 'none' when it was exported with "
                        "--model-slot --fallback none (its slot spans the model part too); "
                        "default: what the --firmware project's edge-export.json says, else "
                        "'embedded'")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the image (.uf2 for UF2) or, with --firmware on ESP32, the "
                        "merged flash image, instead of flashing")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every file, address and command; flash nothing")
    parser.add_argument("--list-ports", action="store_true",
                        help="list serial ports with USB VID:PID and the boards they suggest")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_boards_dir_arg(parser)
    add_logging_args(parser)
    add_common_args(parser, EXAMPLES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.list_ports:
        return _list_ports(args)
    if not args.board:
        raise FlashError("--board is required (e.g. --board esp32s3; --list-ports suggests one)")
    request = FlashRequest(board=args.board, boards_dirs=tuple(args.boards_dir), model=args.model,
                           labels=args.labels, arena_size=args.arena_size,
                           firmware=args.firmware, port=args.port, output=args.output,
                           dry_run=args.dry_run, fallback=args.fallback)
    result = flash(request)
    _report(result, args)
    return EXIT_OK


def _report(result: FlashResult, args: argparse.Namespace) -> None:
    if args.json:
        print_json(result.to_json())
        return
    if result.image_size is not None:
        print(f"model image: {result.image_size:,} bytes, arena {result.arena_size:,} bytes, "
              f"{result.label_count} labels")
    if args.dry_run:
        print("dry run, nothing written or flashed:")
        for line in result.steps.lines():
            print(line)
        return
    for path in result.written:
        print(f"wrote {path}")
    if result.flashed:
        print(f"flashed {result.steps.board}")


def _list_ports(args: argparse.Namespace) -> int:
    boards = load_boards(args.boards_dir)
    found = ports.list_ports(boards)
    if args.json:
        print_json([{"device": p.device, "usb_id": p.usb_id, "description": p.description,
                     "boards": list(p.boards)} for p in found])
        return EXIT_OK
    if not found:
        print("no serial ports found; plug the board in (for RP2040 in BOOTSEL mode look for "
              "the RPI-RP2 drive instead)")
        return EXIT_OK
    width = max(len("port"), *(len(p.device) for p in found))
    print(f"{'port':<{width}}  {'usb id':9}  description / suggested command")
    for port in found:
        hint = (f"  -> edge-flash --board {port.boards[0]} --port {port.device}"
                if port.boards else "")
        also = f" (or {', '.join(port.boards[1:])})" if len(port.boards) > 1 else ""
        print(f"{port.device:<{width}}  {port.usb_id or '-':9}  {port.description}{hint}{also}")
    return EXIT_OK
