"""``edge-run --board B --camera C``: label camera frames until stopped.

Labels go to stdout as JSON lines (or ``--output``/``--serial``); a status line every few
seconds and the final summary go to stderr. SIGINT/SIGTERM finish the frame in hand, flush the
sinks and exit 0. Errors a user can fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.boards import load_boards
from edge.camera import CAMERA_HELP
from edge.cli.arg_types import frame_size, positive, unit
from edge.cli.args import (
    add_mqtt_args,
    add_runtime_args,
    mqtt_from_args,
    part_from_args,
    runtime_from_args,
)
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
from edge.cli.kind_args import add_kind_args
from edge.decode.geometry import FITS as RESIZE_MODES  # not preprocess: it imports OpenCV
from edge.errors import SinkError
from edge.pipeline.recorder import UNLABELLED_FOLDER, RecordOptions
from edge.pipeline.runner import LoopSettings
from edge.pipeline.service import ModelOptions, RunOptions, SourceOptions, run_service
from edge.pipeline.stats import RunSummary
from edge.preview import PreviewOptions, parse_bind
from edge.sinks import SinkOptions

PROG = "edge-run"
EXAMPLES = (
    "edge-run --camera demo --max-frames 100                  # the bundled model on a live scene",
    "edge-run --board rpi4 --camera 0 --model model.tflite --smooth 5",
    "edge-run --camera clip.mp4 --top-k 3 --output labels.jsonl",
    "edge-run --camera clip.mp4 --preview 8080     # at the clip's own pace (--realtime)",
    "edge-run --board rpi5 --camera 0 --serial /dev/serial0 --serial-format binary --on-change",
    "edge-run --camera 0 --model yolov8n_int8.tflite --classes person --on-change --mqtt ...",
    "edge-run --list-boards --json",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Label camera frames continuously with a classifier, a detector "
                               "(boxes), a segmenter (pixel shares) or a pose model (keypoints).")
    _add_source_args(p.add_argument_group("source"))
    _add_model_args(p.add_argument_group("model"))
    add_runtime_args(p, board_default="host")
    _add_loop_args(p.add_argument_group("labelling and limits"))
    _add_sink_args(p.add_argument_group("where labels go (default: stdout)"))
    add_mqtt_args(p)
    _add_preview_args(p.add_argument_group("live preview in a browser"))
    _add_record_args(p.add_argument_group("recording training images (for edge-model train)"))
    add_max_image_pixels_arg(p)
    p.add_argument("--json", action="store_true",
                   help="end stdout with the summary as one JSON line {\"summary\": ...}; "
                        "with --list-boards, the boards as one JSON document")
    p.add_argument("--list-boards", action="store_true", help="list board profiles and exit")
    add_boards_dir_arg(p)
    add_common_args(p, EXAMPLES)
    add_logging_args(p)
    return p


def _add_source_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--camera", default="0", help=f"{CAMERA_HELP} (default: 0)")
    g.add_argument("--loop", action="store_true", help="restart a video file or folder at its end")
    g.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="play a video file at its own pace, by its timestamps, instead of as "
                        "fast as it decodes (frames the model cannot keep up with are dropped, "
                        "as a camera's); default: on with --preview or --mqtt, off otherwise")
    g.add_argument("--stall-timeout", dest="stall_timeout_s", type=positive(float), default=5.0,
                   metavar="S", help="reopen a camera that sends no frame for S seconds "
                                     "(default: 5)")


def _add_model_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--model", help="a .tflite classifier, detector, segmenter or pose model "
                                   "(default: the bundled demo model)")
    g.add_argument("--labels", help="labels file (default: the model's own)")
    g.add_argument("--resize", choices=RESIZE_MODES, default=None,
                   help="fit frames to the model by squashing (default), centre-cropping or "
                        "letterboxing (the default for YOLO)")
    add_kind_args(g)


def _add_loop_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--top-k", type=positive(int), default=1, metavar="K",
                   help="labels per event, best first (default: 1)")
    g.add_argument("--threshold", type=unit, default=None, metavar="T",
                   help="minimum score of a label, box or keypoint (default: 0; detectors "
                        "0.25 YOLO, 0.5 BlazeFace, 0.4 SSD)")
    g.add_argument("--smooth", type=positive(int), default=1, metavar="N",
                   help="combine scores over the last N frames (default: 1, none)")
    g.add_argument("--smooth-method", choices=["mean", "median"], default="mean",
                   help="how --smooth combines scores (default: mean)")
    g.add_argument("--max-frames", type=positive(int), metavar="N",
                   help="stop after N labelled frames")
    g.add_argument("--duration", dest="duration_s", type=positive(float), metavar="S",
                   help="stop after S seconds")
    g.add_argument("--status-interval", dest="status_interval_s", type=positive(float),
                   default=5.0, metavar="S", help="seconds between status lines (default: 5)")


def _add_sink_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--output", metavar="FILE.jsonl", help="write JSON lines to FILE")
    g.add_argument("--serial", nargs="?", const="", metavar="PORT|URL",
                   help="stream labels over a serial port or pyserial URL "
                        "(without a value: the board's port)")
    g.add_argument("--serial-format", choices=["json", "binary"], default="json",
                   help="serial label protocol mode (default: json lines)")
    g.add_argument("--baud", type=positive(int), help="serial speed (default: the board's)")
    g.add_argument("--on-change", action="store_true",
                   help="emit an event only when it changes: the top label (classifiers), "
                        "the set of labels and their counts (detectors), the classes present "
                        "(segmenters), the keypoints seen (pose)")
    g.add_argument("--stdout", action="store_true",
                   help="also print JSON lines when another sink is given")


def _add_preview_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--preview", metavar="[HOST:]PORT",
                   help="serve a page with the labelled camera stream (MJPEG), label events "
                        "(SSE), /status and /metrics; HOST defaults to 127.0.0.1")
    g.add_argument("--preview-token", metavar="TOKEN",
                   help="require this token (?token= or Authorization: Bearer) on every "
                        "request; use it when HOST exposes the preview")
    g.add_argument("--preview-host", action="append", default=[], metavar="NAME",
                   help="a host name the preview is reached by (repeatable); requests for "
                        "other names are refused (DNS rebinding). The bound address and, on "
                        "loopback, localhost always work")
    g.add_argument("--preview-connections", dest="max_connections", type=positive(int),
                   default=640, metavar="N",
                   help="most connections at once (default: 640, lowered to fit the "
                        "descriptor limit); idle ones make room for new ones")
    g.add_argument("--preview-fps", dest="max_fps", type=positive(float), default=10.0,
                   metavar="N", help="most preview frames encoded per second (default: 10)")


def _add_record_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--record", metavar="DIR",
                   help="save frames: with --label, as the model sees them into DIR/LABEL/ "
                        "(class folders for edge-model train); without, whole frames into "
                        "DIR/images/ for labelling boxes (YOLO layout, --task detect)")
    g.add_argument("--label", help="class name of the recorded frames (with --record)")
    g.add_argument("--every", type=positive(int), default=1, metavar="N",
                   help="record every N-th frame (default: 1)")
    g.add_argument("--record-size", type=frame_size, metavar="WxH",
                   help="record at this size (default: the model's input with --label, the "
                        "camera's size without); use the size the model you will train takes, "
                        "e.g. 224x224 for --board rpi4")


def record_from_args(args: argparse.Namespace) -> RecordOptions | None:
    if args.record is None:
        for given, name in ((args.label, "--label"), (args.record_size, "--record-size")):
            if given is not None:
                raise SinkError(f"{name} is about recorded frames; add --record DIR")
        return None
    if args.label == "":
        raise SinkError("--label needs a class name, e.g. --label empty")
    return RecordOptions(args.record, args.label, args.every, args.record_size)


def saved_folder(args: argparse.Namespace) -> Path:
    """Where ``--record`` puts its frames (``DIR/LABEL`` or ``DIR/images``)."""
    return Path(args.record) / (args.label if args.label is not None else UNLABELLED_FOLDER)


def preview_from_args(args: argparse.Namespace) -> PreviewOptions | None:
    if args.preview is None:
        return None
    host, port = parse_bind(args.preview)
    return part_from_args(PreviewOptions, args, host=host, port=port, token=args.preview_token,
                          hosts=tuple(args.preview_host))


def realtime_from_args(args: argparse.Namespace) -> bool:
    """``--realtime``/``--no-realtime``, or on when a preview or MQTT shows the labels live."""
    if args.realtime is not None:
        return bool(args.realtime)
    return args.preview is not None or args.mqtt is not None


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The parsed command line as :class:`RunOptions`, one part per argument group."""
    return RunOptions(
        source=part_from_args(SourceOptions, args, realtime=realtime_from_args(args)),
        board=args.board,
        boards_dirs=tuple(args.boards_dir), model=part_from_args(ModelOptions, args),
        runtime=runtime_from_args(args),
        loop=part_from_args(LoopSettings, args, threshold=args.threshold or 0.0),
        sinks=part_from_args(SinkOptions, args, mqtt=mqtt_from_args(args)),
        preview=preview_from_args(args), record=record_from_args(args))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if args.list_boards:
        return run_command(PROG, lambda: _list_boards(args.boards_dir, args.json))
    return run_command(PROG, lambda: _run(args))


def _list_boards(dirs: list[str], as_json: bool) -> int:
    boards = [(b, b.runtime) for b in sorted(load_boards(dirs).values(), key=lambda b: b.name)
              if b.runtime is not None]
    if as_json:
        print_json([{"name": b.name, "cores": b.cores, "threads": rt.threads,
                     "camera": rt.camera, "delegate": rt.delegate,
                     "description": b.description, "source": str(b.source)}
                    for b, rt in boards])
        return EXIT_OK
    print(f"{'board':16} {'cores':>5} {'threads':>7}  {'camera':9} {'delegate':8}  description")
    for board, rt in boards:
        cores = str(board.cores) if board.cores else "auto"
        threads = str(rt.threads) if rt.threads else "all"
        print(f"{board.name:16} {cores:>5} {threads:>7}  {rt.camera:9} {rt.delegate:8}  "
              f"{board.description}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    quiet = args.quiet > 0

    def started(info: dict[str, Any]) -> None:
        if not quiet:
            w, h = info["input_size"]
            print(f"{PROG}: board {info['board']}, camera {info['camera']}, model "
                  f"{info['model']} ({info['kind']}, {info['backend']}, {info['threads']} "
                  "threads, delegate "
                  f"{info['delegate']}, input {w}x{h})", file=sys.stderr, flush=True)
        if info.get("preview"):
            print(f"{PROG}: preview at {info['preview']}", file=sys.stderr, flush=True)
        if info.get("record") and not quiet:
            print(f"{PROG}: {info['record']}", file=sys.stderr, flush=True)

    def status(summary: RunSummary) -> None:
        if not quiet:
            print(f"{PROG}: {summary.status_line()}", file=sys.stderr, flush=True)

    summary = run_service(options_from_args(args), stdout=sys.stdout, on_start=started,
                          on_status=status)
    print(f"{PROG}: done in {summary.seconds:.1f} s, {summary.fps:.1f} fps overall; "
          f"{summary.status_line()}", file=sys.stderr, flush=True)
    saved = summary.sinks.get("record")
    if saved is not None:
        print(f"{PROG}: recorded {saved['saved']:,} frames to {saved_folder(args)}/"
              + (f" ({saved['failed']:,} could not be saved)" if saved["failed"] else ""),
              file=sys.stderr, flush=True)
    if summary.accuracy is not None:
        print(f"{PROG}: accuracy against the scene's ground truth: {summary.accuracy:.1%}",
              file=sys.stderr, flush=True)
    if args.json:
        sys.stdout.write(json.dumps({"summary": summary.as_dict()}) + "\n")
        sys.stdout.flush()
    failed = [name for name, counts in summary.sinks.items() if counts.get("failed")]
    if failed:
        print(f"{PROG}: error: {', '.join(failed)} delivery stopped during the run (said "
              "above); the other sinks got every label", file=sys.stderr, flush=True)
        return EXIT_ERROR
    return EXIT_OK
