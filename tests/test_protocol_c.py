"""The C99 encoder header produces the same bytes as the Python encoder (real gcc on the host)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.serial.protocol import (
    MAX_DETECTIONS,
    MAX_TOP_K,
    DetectionRecord,
    LabelRecord,
    StreamDecoder,
    encode_binary,
    encode_text,
    quantize,
    quantize_score,
)

HEADER_DIR = Path(__file__).resolve().parents[1] / "firmware_export" / "c"
GCC = shutil.which("gcc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow"]

# Shared test vectors: every field at its edges, escapes in text, zeros and 0xFF-rich payloads.
VECTORS = [
    LabelRecord(0, 0, 0, 0.0),
    LabelRecord(7, 123_456, 3, 0.9876, "cat", ((3, 0.9876), (1, 0.01)), 12.5),
    LabelRecord(0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF, 1.0, "", (), 4_294_967.295),
    LabelRecord(256, 65_536, 256, 0.5, 'say "hi"\\\t\n\x01\x1f é ☃', ((0, 0.25),), 0.0),
    LabelRecord(0x0101_0101, 0x7F7F_7F7F, 0x0101, 0.003, None, ((0xFFFF, 0.75),), 0.001),
    LabelRecord(42, 1000, 9, 0.1234, "pedestrian",
                tuple((i, round(1 / (i + 2), 4)) for i in range(MAX_TOP_K)), 33.333),
    LabelRecord(3, 77, 2, 0.5, "two", ((1, 0.25),), 1.5, frame=0xFFFF_FFFF, device="cam-1"),
    LabelRecord(4, 78, 0, 0.0, None, (), None, frame=0, device='k\u00fcche "2"'),
    LabelRecord(5, 79, 1, 1.0, None, (), None, device="x" * 32),
    # Run ids and detector records: none found, edges of the frame, a full frame of objects.
    LabelRecord(6, 80, 0, 0.0, None, (), 2.0, frame=6, run=0, detections=()),
    LabelRecord(7, 81, 15, 0.91, "person", (), 2.5, frame=9, device="cam-2", run=0xDEADBEEF,
                detections=(DetectionRecord(15, 0.91, (0.1, 0.25, 0.5, 1.0)),
                            DetectionRecord(0xFFFF, 0.0, (0.0, 0.0, 0.0, 0.0)),
                            DetectionRecord(256, 1.0, (0.003, 0.5, 0.003, 0.5)))),
    LabelRecord(8, 82, 1, 0.5, None, (), None, run=0x0000_0100,
                detections=tuple(DetectionRecord(i, 1 / (i + 2), (i / 40, 0.0, i / 20, 1 / 3))
                                 for i in range(MAX_DETECTIONS))),
]
NORMALISE = [(0, 96), (1, 96), (48, 96), (95, 96), (96, 96), (97, 96), (1, 3), (2, 3),
             (1, 2), (319, 320), (4095, 4096), (1, 65535), (4_000_000_000, 4_000_000_001),
             (5, 0)]


def _c_string(text: str | None) -> str:
    if text is None:
        return "NULL"
    return '"' + "".join(f"\\x{b:02x}" for b in text.encode("utf-8")) + '"'


def _c_float(value: float) -> str:
    return f"edge_labels_quantize_score({value!r}f)"


def _c_vector(i: int, r: LabelRecord) -> str:
    entries = ", ".join(f"{{{label}u, {_c_float(s)}}}" for label, s in r.top_k) or "{0u, 0u}"
    latency_us = 0 if r.latency_ms is None else round(r.latency_ms * 1000)
    boxes = ", ".join(f"{{{d.label}u, {_c_float(d.score)}, {{{', '.join(map(_c_float, d.box))}}}}}"
                      for d in r.detections or ()) or "{0u, 0u, {0u, 0u, 0u, 0u}}"
    return f"""
    {{
        edge_labels_entry_t top_k[] = {{{entries}}};
        edge_labels_detection_t detections[] = {{{boxes}}};
        edge_labels_record_t r = {{0}};
        r.seq = {r.seq}u;
        r.time_ms = {r.time_ms}u;
        r.label = {r.label}u;
        r.score_q16 = {_c_float(r.score)};
        r.text = {_c_string(r.text)};
        r.top_k = top_k;
        r.top_k_count = {len(r.top_k)}u;
        r.has_latency = {int(r.latency_ms is not None)}u;
        r.latency_us = {latency_us}u;
        r.has_frame = {int(r.frame is not None)}u;
        r.frame = {r.frame or 0}u;
        r.device = {_c_string(r.device)};
        r.has_run = {int(r.run is not None)}u;
        r.run = {r.run or 0}u;
        r.has_detections = {int(r.detections is not None)}u;
        r.detection_count = {len(r.detections or ())}u;
        r.detections = detections;
        emit('B', frame, edge_labels_encode_binary(&r, frame, sizeof frame));
        emit('T', (const uint8_t *)line, edge_labels_encode_text(&r, line, sizeof line));
        emit('b', frame, edge_labels_encode_binary(&r, frame, {len(encode_binary(r)) - 1}u));
        emit('t', (const uint8_t *)line,
             edge_labels_encode_text(&r, line, {len(encode_text(r)) - 1}u));
    }} /* vector {i} */"""


# Records no binary frame holds: both encoders refuse them in both modes (the same records travel
# in both), and so do the Python ones (test_python_refuses_what_c_refuses).
OVERSIZE = """
    {
        static edge_labels_entry_t many[EDGE_LABELS_MAX_TOP_K];
        static edge_labels_detection_t boxes[EDGE_LABELS_MAX_DETECTIONS];
        edge_labels_detection_t swapped = {1u, 1u, {9u, 0u, 8u, 0u}};
        edge_labels_record_t r = {0};
        r.top_k = many;
        r.top_k_count = EDGE_LABELS_MAX_TOP_K;
        r.has_latency = 1u;
        r.has_frame = 1u;
        emit('Z', frame, edge_labels_encode_binary(&r, frame, sizeof frame));
        emit('Z', (const uint8_t *)line, edge_labels_encode_text(&r, line, sizeof line));
        r.top_k_count = 0u;
        r.has_detections = 1u;
        r.detections = boxes;
        r.detection_count = EDGE_LABELS_MAX_DETECTIONS;
        r.device = "cam";
        emit('Z', frame, edge_labels_encode_binary(&r, frame, sizeof frame));
        emit('Z', (const uint8_t *)line, edge_labels_encode_text(&r, line, sizeof line));
        r.detections = &swapped;
        r.detection_count = 1u;
        emit('Z', frame, edge_labels_encode_binary(&r, frame, sizeof frame));
        emit('Z', (const uint8_t *)line, edge_labels_encode_text(&r, line, sizeof line));
    }"""


def _c_program() -> str:
    body = "".join(_c_vector(i, r) for i, r in enumerate(VECTORS))
    body += "".join(f'\n    printf("N %u\\n", (unsigned)edge_labels_normalise({p}u, {n}u));'
                    for p, n in NORMALISE)
    body += OVERSIZE
    return f"""#include <stdio.h>
#include "edge_labels.h"

static void emit(char kind, const uint8_t *bytes, size_t n)
{{
    size_t i;
    printf("%c ", kind);
    for (i = 0; i < n; i++) {{
        printf("%02x", bytes[i]);
    }}
    printf("\\n");
}}

int main(void)
{{
    static uint8_t frame[EDGE_LABELS_MAX_FRAME];
    static char line[EDGE_LABELS_MAX_LINE];
    {body}
    return 0;
}}
"""


@pytest.fixture(scope="module")
def c_output(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    if GCC is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("c")
    source = work / "vectors.c"
    source.write_text(_c_program())
    exe = work / "vectors"
    subprocess.run([GCC, *CFLAGS, "-I", str(HEADER_DIR), str(source), "-o", str(exe)],
                   check=True, capture_output=True, text=True, timeout=60)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10)
    rows = [line.split(" ") for line in out.stdout.splitlines()]
    return [(kind, bytes.fromhex(hex_) if kind != "N" else int(hex_).to_bytes(2, "little"))
            for kind, hex_ in rows]


def _float32_quantize(score: float) -> int:
    """What edge_labels_quantize_score computes: float32 arithmetic, then truncation."""
    s = np.float32(score)
    if not s > 0:
        return 0
    if s >= 1:
        return 65535
    return int(s * np.float32(65535.0) + np.float32(0.5))


def test_vectors_quantize_alike_in_float32_and_float64() -> None:
    # C quantizes in float32, Python in float64: they agree except within ~1e-3 of a tie.
    for r in VECTORS:
        boxes = [v for d in r.detections or () for v in (d.score, *d.box)]
        for score in (r.score, *(s for _, s in r.top_k), *boxes):
            assert _float32_quantize(score) == quantize_score(score), score


def test_c_binary_frames_equal_python(c_output: list[tuple[str, bytes]]) -> None:
    frames = [data for kind, data in c_output if kind == "B"]
    assert frames == [encode_binary(r) for r in VECTORS]


def test_c_text_lines_equal_python(c_output: list[tuple[str, bytes]]) -> None:
    lines = [data for kind, data in c_output if kind == "T"]
    assert lines == [encode_text(r) for r in VECTORS]


def test_c_encoder_refuses_a_buffer_one_byte_short(c_output: list[tuple[str, bytes]]) -> None:
    short = [data for kind, data in c_output if kind in "bt"]
    assert short == [b""] * (2 * len(VECTORS))


def test_python_decoder_reads_c_output(c_output: list[tuple[str, bytes]]) -> None:
    binary = StreamDecoder("auto")
    frames = binary.feed(b"\x00" + b"".join(d for kind, d in c_output if kind == "B"))
    assert frames == [quantize(r, "binary") for r in VECTORS]
    text = StreamDecoder("auto")
    lines = text.feed(b"".join(d for kind, d in c_output if kind == "T"))
    assert lines == [quantize(r, "text") for r in VECTORS]
    assert binary.mode == "binary" and text.mode == "text"
    assert binary.stats.crc_errors == binary.stats.malformed == text.stats.malformed == 0


def test_c_normalises_pixels_rounding_half_up(c_output: list[tuple[str, bytes]]) -> None:
    got = [int.from_bytes(data, "little") for kind, data in c_output if kind == "N"]
    # Exact rational rounding: floor(p / n * 65535 + 1/2), and 65535 at or beyond the edge.
    want = [65535 if n == 0 or p >= n else (2 * p * 65535 + n) // (2 * n) for p, n in NORMALISE]
    assert got == want


def test_old_decoders_refuse_detector_records_instead_of_misreading_them() -> None:
    # A decoder of the first layout checks flags & ~0x07 == 0 (docs/protocol.md): run and
    # detections set bits 3 and 4, so such a frame is counted malformed there, never misread.
    from edge.serial.protocol import FLAG_DETECTIONS, FLAG_RUN, encode_payload

    for r in VECTORS[-3:]:
        flags = encode_payload(r)[1]
        assert flags & ~0x07 and flags & (FLAG_RUN | FLAG_DETECTIONS) == flags & ~0x07


def test_c_refuses_records_no_frame_holds(c_output: list[tuple[str, bytes]]) -> None:
    assert [data for kind, data in c_output if kind == "Z"] == [b""] * 6


def test_python_refuses_what_c_refuses() -> None:
    from edge.errors import ProtocolError

    box = DetectionRecord(0, 0.0, (0.0, 0.0, 0.0, 0.0))
    for record in (LabelRecord(0, 0, 0, 0.0, top_k=((0, 0.0),) * MAX_TOP_K, latency_ms=0.0,
                               frame=0),
                   LabelRecord(0, 0, 0, 0.0, latency_ms=0.0, frame=0, device="cam",
                               detections=(box,) * MAX_DETECTIONS),
                   LabelRecord(0, 0, 0, 0.0, latency_ms=0.0, frame=0, device="cam",
                               detections=(DetectionRecord(1, 0.0, (1.4e-4, 0.0, 1.2e-4, 0.0)),))):
        for encode in (encode_binary, encode_text):
            with pytest.raises(ProtocolError):
                encode(record)


def test_quantize_rounds_half_up_as_c() -> None:
    assert quantize_score(0.0) == 0 and quantize_score(1.0) == 65535
    assert quantize_score(0.5) == 32768 == _float32_quantize(0.5)  # 32767.5 rounds up


def test_header_needs_no_stdio_and_no_heap() -> None:
    code = (HEADER_DIR / "edge_labels.h").read_text()
    includes = [line.split()[1] for line in code.splitlines() if line.startswith("#include")]
    assert includes == ["<stddef.h>", "<stdint.h>"]
    assert not any(word in code for word in ("malloc(", "printf(", "free("))
