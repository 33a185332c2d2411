"""``edge-listen PORT|URL``: print the labels a device streams over a serial line.

Records go to stdout (one line each, JSON lines with ``--json``); the summary goes to stderr
when the command ends, also on Ctrl-C or SIGTERM. Exit code 0, or 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge.cli.common import EXIT_OK, add_logging_args, configure_logging, run_command
from edge.errors import LabelError
from edge.serial.listen import ListenSummary, listen
from edge.serial.protocol import LabelRecord

PROG = "edge-listen"
FORMATS = {"auto": "auto", "json": "text", "text": "text", "binary": "binary"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Decode the labels a device streams over a serial line.")
    parser.add_argument("port", metavar="PORT|URL",
                        help="device path (/dev/ttyACM0, COM3) or pyserial URL "
                             "(loop://, spy://PORT, socket://HOST:PORT, hwgrep://VID:PID)")
    parser.add_argument("--baud", type=_positive(int), default=115200, help="default: 115200")
    parser.add_argument("--format", choices=["auto", "json", "binary"], default="auto",
                        help="wire format; auto detects text (JSON lines) or binary (COBS)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="labels file (one per line) to name label indices")
    parser.add_argument("--json", action="store_true", help="print records as JSON lines")
    parser.add_argument("--max-frames", type=_positive(int), metavar="N",
                        help="stop after N records")
    parser.add_argument("--duration", type=_positive(float), metavar="S",
                        help="stop after S seconds")
    parser.add_argument("--reset", action="store_true",
                        help="reset the device on open (pulse DTR); off by default")
    add_logging_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _listen(args))


def _listen(args: argparse.Namespace) -> int:
    names = _read_labels(args.labels) if args.labels else ()
    show = _json_line if args.json else _text_line
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = listen(args.port, lambda r: print(show(r, names), flush=True),
                         baud=args.baud, fmt=FORMATS[args.format],  # type: ignore[arg-type]
                         reset_on_open=args.reset, max_frames=args.max_frames,
                         duration=args.duration, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(_summary_line(summary, args.json), file=sys.stderr, flush=True)
    return EXIT_OK


def _read_labels(path: Path) -> tuple[str, ...]:
    from edge.model.labels import parse_label_lines

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"cannot read labels file {path}: {e}") from e
    return parse_label_lines(text.splitlines())


def _name(record: LabelRecord, names: Sequence[str]) -> str | None:
    if record.text is not None:
        return record.text
    return names[record.label] if record.label < len(names) else None


def _json_line(record: LabelRecord, names: Sequence[str]) -> str:
    data: dict[str, Any] = {"seq": record.seq, "time_ms": record.time_ms, "label": record.label,
                            "text": _name(record, names), "score": record.score}
    if record.top_k:
        data["top_k"] = [list(pair) for pair in record.top_k]
    if record.latency_ms is not None:
        data["latency_ms"] = record.latency_ms
    if record.file is not None:
        data["file"] = record.file
    return json.dumps(data, ensure_ascii=False)


def _text_line(record: LabelRecord, names: Sequence[str]) -> str:
    name = _name(record, names)
    parts = [f"seq={record.seq}", f"time_ms={record.time_ms}", f"label={record.label}"]
    if name is not None:
        parts.append(json.dumps(name, ensure_ascii=False))
    parts.append(f"score={record.score:.4f}")
    if record.top_k:
        parts.append("top_k=" + ",".join(f"{label}:{s:.4f}" for label, s in record.top_k))
    if record.latency_ms is not None:
        parts.append(f"latency_ms={record.latency_ms:.3f}")
    if record.file is not None:
        parts.append("file=" + json.dumps(record.file, ensure_ascii=False))
    return " ".join(parts)


def _summary_line(summary: ListenSummary, as_json: bool) -> str:
    counts = summary.as_dict()
    if as_json:
        return json.dumps({"summary": counts})
    return f"{PROG}: " + ", ".join(f"{key}={value}" for key, value in counts.items())


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value
    return parse


if __name__ == "__main__":
    sys.exit(main())
