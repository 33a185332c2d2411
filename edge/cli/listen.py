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
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.arg_types import non_negative_int, positive
from edge.cli.args import add_mqtt_args, mqtt_from_args
from edge.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    add_common_args,
    add_logging_args,
    configure_logging,
    run_command,
)
from edge.errors import LabelError
from edge.runtime.labels import read_labels
from edge.serial.gateway import (
    DEFAULT_MAX_DEVICES,
    DeviceGate,
    MqttGateway,
    label_name,
    record_json,
)
from edge.serial.listen import ListenSummary, listen
from edge.serial.protocol import LabelRecord

if TYPE_CHECKING:
    from edge.sinks.mqtt import MqttSink

PROG = "edge-listen"
EXAMPLES = (
    "edge-listen /dev/ttyACM0                         # what an exported firmware streams",
    "edge-listen /dev/ttyUSB0 --baud 921600 --format binary --labels labels.txt",
    "edge-listen socket://localhost:7000 --json --max-frames 10",
    "edge-listen /dev/ttyUSB0 --mqtt mqtt://broker/edge --allow-device cam-1 --allow-device cam-2",
)
FORMATS = {"auto": "auto", "json": "text", "text": "text", "binary": "binary"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Decode the labels a device streams over a serial line.")
    parser.add_argument("port", metavar="PORT|URL",
                        help="device path (/dev/ttyACM0, COM3) or pyserial URL "
                             "(loop://, spy://PORT, socket://HOST:PORT, hwgrep://VID:PID)")
    parser.add_argument("--baud", type=positive(int), default=115200,
                        help="serial speed in bit/s (default: 115200)")
    parser.add_argument("--format", choices=["auto", "json", "binary"], default="auto",
                        help="wire format; auto detects text (JSON lines) or binary (COBS)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="labels file (one per line), or the .tflite model with its "
                             "labels embedded, to name label indices")
    parser.add_argument("--json", action="store_true", help="print records as JSON lines")
    parser.add_argument("--max-frames", type=positive(int), metavar="N",
                        help="stop after N records")
    parser.add_argument("--duration", type=positive(float), metavar="S",
                        help="stop after S seconds")
    parser.add_argument("--status-interval", type=positive(float), default=5.0, metavar="S",
                        help="with --mqtt, publish the link's counters as the device's status "
                             "every S seconds (default: 5)")
    parser.add_argument("--stdout", action="store_true",
                        help="with --mqtt, also print the records (default: only publish them)")
    parser.add_argument("--reset", action="store_true",
                        help="reset the device on open (pulse DTR); off by default")
    add_mqtt_args(parser)
    gate = parser.add_argument_group(
        "devices the gateway publishes for",
        "each device name on the wire becomes a device on the broker, with retained Home "
        "Assistant discovery messages; records of other names are counted as refused (and "
        "printed with --stdout), never published")
    gate.add_argument("--max-devices", type=non_negative_int, default=DEFAULT_MAX_DEVICES,
                      metavar="N",
                      help="publish for at most N device names, the first heard, besides "
                           f"--device-name (default: {DEFAULT_MAX_DEVICES})")
    gate.add_argument("--allow-device", action="append", metavar="NAME",
                      help="publish only for this device name (repeatable); overrides "
                           "--max-devices")
    add_logging_args(parser)
    add_common_args(parser, EXAMPLES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    return run_command(PROG, lambda: _listen(args))


def _listen(args: argparse.Namespace) -> int:
    names = _read_labels(args.labels) if args.labels else ()
    if hasattr(sys.stdout, "reconfigure"):  # a non-UTF-8 terminal gets escapes, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    show = _json_line if args.json else _text_line
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
    with ExitStack() as stack:
        for sig, handler in previous.items():
            stack.callback(signal.signal, sig, handler)
        on_record = _printer(show, names, quiet=args.mqtt is not None and not args.stdout)
        sink = gate = None
        options = mqtt_from_args(args)
        if options is not None:
            from edge.sinks.mqtt import MqttSink

            sink = stack.enter_context(MqttSink.open(options))
            gate = DeviceGate(sink.device, args.max_devices, args.allow_device)
            gateway = MqttGateway(sink, names, gate)
            on_record = _both(on_record, gateway.publish)
        summary = listen(args.port, on_record,
                         baud=args.baud, fmt=FORMATS[args.format],  # type: ignore[arg-type]
                         reset_on_open=args.reset, max_frames=args.max_frames,
                         duration=args.duration, stop=stop,
                         on_status=None if sink is None or gate is None
                         else _status_to(sink, gate),
                         status_interval_s=args.status_interval)
        if sink is not None:
            sink.close()  # delivers what is queued (up to --mqtt-drain) before the summary
    if gate is not None:
        summary.gateway["refused"] = gate.refused
    mqtt = sink.counters() if sink is not None else None
    print(_summary_line(summary, args.json, mqtt), file=sys.stderr, flush=True)
    if mqtt is not None and mqtt.get("failed"):
        print(f"{PROG}: error: MQTT delivery stopped during the run (said above)",
              file=sys.stderr, flush=True)
        return EXIT_ERROR
    return EXIT_OK


def _status_to(sink: MqttSink, gate: DeviceGate) -> Callable[[ListenSummary], None]:
    """The gateway's periodic status: the link's counters on the device's status topic."""
    return lambda summary: sink.status({**summary.as_dict(), "refused": gate.refused})


def _printer(show: Callable[[LabelRecord, Sequence[str]], str], names: Sequence[str], *,
             quiet: bool) -> Callable[[LabelRecord], None]:
    if quiet:
        return lambda record: None
    return lambda record: print(show(record, names), flush=True)


def _both(first: Callable[[LabelRecord], None],
          second: Callable[[LabelRecord], None]) -> Callable[[LabelRecord], None]:
    def call(record: LabelRecord) -> None:
        first(record)
        second(record)
    return call


def _read_labels(path: Path) -> tuple[str, ...]:
    if path.suffix == ".tflite":  # the labels embedded in the model the device runs
        from edge.model import read_model

        labels = read_model(path).labels
        if not labels:
            raise LabelError(f"{path}: has no embedded labels; pass its labels file")
        return tuple(labels)
    return read_labels(path)


def _json_line(record: LabelRecord, names: Sequence[str]) -> str:
    return json.dumps(record_json(record, names), ensure_ascii=False)


def _text_line(record: LabelRecord, names: Sequence[str]) -> str:
    name = label_name(record, names)
    parts = [f"seq={record.seq}", f"time_ms={record.time_ms}", f"label={record.label}"]
    if name is not None:
        parts.append(json.dumps(name, ensure_ascii=False))
    parts.append(f"score={record.score:.4f}")
    if record.top_k:
        parts.append("top_k=" + ",".join(f"{label}:{s:.4f}" for label, s in record.top_k))
    if record.latency_ms is not None:
        parts.append(f"latency_ms={record.latency_ms:.3f}")
    if record.frame is not None:
        parts.append(f"frame={record.frame}")
    if record.device is not None:
        parts.append(f"device={json.dumps(record.device, ensure_ascii=False)}")
    if record.file is not None:
        parts.append("file=" + json.dumps(record.file, ensure_ascii=False))
    if record.run is not None:
        parts.append(f"run={record.run:08x}")
    if record.detections is not None:
        parts.append(f"detections={len(record.detections)}")
        for d in record_json(record, names)["detections"]:
            who = (json.dumps(d["label"], ensure_ascii=False) if d["label"] is not None
                   else str(d["index"]))
            parts.append(f"{who}:{d['score']:.4f}@[" + ",".join(f"{v:.4f}" for v in d["box"])
                         + "]")
    return " ".join(parts)


def _summary_line(summary: ListenSummary, as_json: bool,
                  mqtt: dict[str, int] | None = None) -> str:
    counts = summary.as_dict()
    if mqtt is not None:
        counts.update({f"mqtt_{key}": value for key, value in mqtt.items()})
    if as_json:
        return json.dumps({"summary": counts})
    return f"{PROG}: " + ", ".join(f"{key}={value}" for key, value in counts.items())


if __name__ == "__main__":
    sys.exit(main())
