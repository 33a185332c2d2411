"""``edge-run --board B --camera C``: label camera frames until stopped.

Labels go to stdout as JSON lines (or ``--output``/``--serial``); a status line every few
seconds and the final summary go to stderr. SIGINT/SIGTERM finish the frame in hand, flush the
sinks and exit 0. Errors a user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from edge.boards import load_boards
from edge.camera import CAMERA_HELP
from edge.cli.common import (
    EXIT_OK,
    add_boards_dir_arg,
    add_logging_args,
    configure_logging,
    run_command,
)
from edge.pipeline.service import RunOptions, run_service
from edge.pipeline.stats import RunSummary
from edge.runtime.backends import AUTO_BACKENDS, BACKEND_NAMES, TFLM

PROG = "edge-run"


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return value
    return parse


def _unit(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Classify camera frames continuously.")
    p.add_argument("--board", default="host", help="board profile (default: host); "
                   "see --list-boards")
    p.add_argument("--camera", default="0", help=f"{CAMERA_HELP} (default: 0)")
    p.add_argument("--model", help="a .tflite classifier (default: the bundled demo model)")
    p.add_argument("--labels", help="labels file (default: the model's own)")
    p.add_argument("--threads", type=int, help="interpreter threads (default: the board's; "
                   "0 = every core)")
    p.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                   help=f"interpreter package (default: the first installed of "
                        f"{', '.join(AUTO_BACKENDS)}); {TFLM}: TensorFlow Lite Micro in a "
                        "child process")
    p.add_argument("--resize", choices=["squash", "crop"], default="squash",
                   help="fit frames to the model by squashing (default) or centre-cropping")
    p.add_argument("--top-k", type=_positive(int), default=1, metavar="K", help="default: 1")
    p.add_argument("--threshold", type=_unit, default=0.0, metavar="T",
                   help="minimum score of a label (default: 0)")
    p.add_argument("--smooth", type=_positive(int), default=1, metavar="N",
                   help="combine scores over the last N frames (default: 1, none)")
    p.add_argument("--smooth-method", choices=["mean", "median"], default="mean")
    p.add_argument("--output", metavar="FILE.jsonl", help="write JSON lines to FILE")
    p.add_argument("--serial", nargs="?", const="", metavar="PORT|URL",
                   help="stream labels over a serial port or pyserial URL "
                        "(without a value: the board's port)")
    p.add_argument("--serial-format", choices=["json", "binary"], default="json")
    p.add_argument("--baud", type=_positive(int), help="serial speed (default: the board's)")
    p.add_argument("--on-change", action="store_true",
                   help="emit a label only when the top label changes")
    p.add_argument("--stdout", action="store_true",
                   help="also print JSON lines when --output or --serial is given")
    p.add_argument("--max-frames", type=_positive(int), metavar="N")
    p.add_argument("--duration", type=_positive(float), metavar="S", help="stop after S seconds")
    p.add_argument("--loop", action="store_true", help="restart a video file or folder at its end")
    p.add_argument("--status-interval", type=_positive(float), default=5.0, metavar="S",
                   help="seconds between status lines (default: 5)")
    p.add_argument("--stall-timeout", type=_positive(float), default=5.0, metavar="S",
                   help="reopen a camera that sends no frame for S seconds (default: 5)")
    p.add_argument("--json", action="store_true",
                   help="end stdout with the summary as one JSON line {\"summary\": ...}")
    p.add_argument("--list-boards", action="store_true", help="list board profiles and exit")
    add_boards_dir_arg(p)
    add_logging_args(p)
    return p


def options_from_args(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        camera=args.camera, board=args.board, boards_dirs=tuple(args.boards_dir),
        model=args.model, labels=args.labels, threads=args.threads, backend=args.backend,
        resize=args.resize,
        top_k=args.top_k, threshold=args.threshold, smooth=args.smooth,
        smooth_method=args.smooth_method, output=args.output, serial=args.serial,
        serial_format=args.serial_format, baud=args.baud, on_change=args.on_change,
        stdout=args.stdout, max_frames=args.max_frames, duration_s=args.duration,
        loop=args.loop, status_interval_s=args.status_interval,
        stall_timeout_s=args.stall_timeout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if args.list_boards:
        return run_command(PROG, lambda: _list_boards(args.boards_dir))
    return run_command(PROG, lambda: _run(args))


def _list_boards(dirs: list[str]) -> int:
    for board in sorted(load_boards(dirs).values(), key=lambda b: b.name):
        if board.runtime is None:
            continue
        rt = board.runtime
        cores = str(board.cores) if board.cores else "auto"
        threads = str(rt.threads) if rt.threads else "all"
        print(f"{board.name:16} {cores:>4} cores  {threads:>3} threads  camera {rt.camera:9} "
              f"delegate {rt.delegate:7}  {board.description}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    quiet = args.quiet > 0

    def started(info: dict[str, Any]) -> None:
        if not quiet:
            w, h = info["input_size"]
            print(f"{PROG}: board {info['board']}, camera {info['camera']}, model "
                  f"{info['model']} ({info['backend']}, {info['threads']} threads, delegate "
                  f"{info['delegate']}, input {w}x{h})", file=sys.stderr, flush=True)

    def status(summary: RunSummary) -> None:
        if not quiet:
            print(f"{PROG}: {summary.status_line()}", file=sys.stderr, flush=True)

    summary = run_service(options_from_args(args), stdout=sys.stdout, on_start=started,
                          on_status=status)
    print(f"{PROG}: done in {summary.seconds:.1f} s, {summary.fps:.1f} fps overall; "
          f"{summary.status_line()}", file=sys.stderr, flush=True)
    if summary.accuracy is not None:
        print(f"{PROG}: accuracy against the scene's ground truth: {summary.accuracy:.1%}",
              file=sys.stderr, flush=True)
    if args.json:
        sys.stdout.write(json.dumps({"summary": summary.as_dict()}) + "\n")
        sys.stdout.flush()
    return EXIT_OK
