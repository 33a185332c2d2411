"""How fast StreamDecoder decodes binary frames, against the byte rate of a 1 Mbaud line.

    PYTHONPATH=. python tools/bench_decoder.py [--frames N] [--chunk BYTES] [--top-k K]
                                               [--detections D]

With ``--detections D`` every record is a detector's record with D boxes (and no top-k).

A 1 Mbaud line with 8N1 framing carries 10 bits per byte: 100,000 bytes/s. The protocol's goal
is a decoder at least 10x faster than that on the host. Not a timed test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import sys
import time

from edge.serial.protocol import (
    STREAM_START,
    DetectionRecord,
    LabelRecord,
    StreamDecoder,
    detections_room,
    encode_binary,
    encode_text,
)

ONE_MBAUD_BYTES_PER_S = 1_000_000 / 10
TARGET_RATIO = 10.0


def make_stream(frames: int, top_k: int, text: bool, detections: int | None = None) -> bytes:
    encode = encode_text if text else encode_binary
    top = tuple((i, 0.01 * i) for i in range(top_k)) if detections is None else ()
    boxes = None if detections is None else tuple(
        DetectionRecord(i, 0.9 - 0.01 * i, (0.01 * i, 0.02 * i, 0.5 + 0.01 * i, 0.9))
        for i in range(detections))
    name = "label" if text else None
    return STREAM_START + b"".join(
        encode(LabelRecord(seq, seq * 33, seq % 1000, (seq % 1000) / 1000, name, top, 4.2,
                           frame=seq, run=0x1234, detections=boxes))
        for seq in range(frames))


def measure(stream: bytes, chunk: int, fmt: str, repeats: int) -> tuple[float, int]:
    """Best bytes/s over ``repeats`` runs, and the number of records decoded."""
    best = 0.0
    decoded = 0
    for _ in range(repeats):
        decoder = StreamDecoder(fmt)  # type: ignore[arg-type]
        start = time.perf_counter()
        decoded = sum(len(decoder.feed(stream[i:i + chunk]))
                      for i in range(0, len(stream), chunk))
        best = max(best, len(stream) / (time.perf_counter() - start))
    return best, decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per feed() call")
    parser.add_argument("--top-k", type=int, default=2, help="top-k entries per frame")
    parser.add_argument("--detections", type=int, metavar="D",
                        help="detector records with D boxes each (0..19) instead of top-k")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    room = detections_room(LabelRecord(0, 0, 0, 0.0, latency_ms=0.0, frame=0, run=0))
    if args.detections is not None and not 0 <= args.detections <= room:
        parser.error(f"--detections must be 0..{room} (what fits beside latency, frame and run)")
    ok = True
    for label, fmt, text in (("binary", "binary", False), ("binary, auto", "auto", False),
                             ("text", "text", True)):
        stream = make_stream(args.frames, args.top_k, text, args.detections)
        rate, decoded = measure(stream, args.chunk, fmt, args.repeats)
        ratio = rate / ONE_MBAUD_BYTES_PER_S
        print(f"{label:13s} {decoded:7d} records, {len(stream) / decoded:5.1f} B/record, "
              f"{rate / 1e6:6.2f} MB/s, {rate / len(stream) * decoded:9.0f} records/s, "
              f"{ratio:5.1f}x a 1 Mbaud line")
        if decoded != args.frames:
            print(f"  decoded {decoded} of {args.frames} records", file=sys.stderr)
            ok = False
        if fmt != "text" and ratio < TARGET_RATIO:
            print(f"  below the {TARGET_RATIO:.0f}x target", file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
