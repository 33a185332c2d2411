"""The pure codec: COBS, both record encodings, and the stream decoder, on plain bytes."""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge.errors import ProtocolError
from edge.serial.cobs import cobs_decode, cobs_encode
from edge.serial.protocol import (
    MAX_DETECTIONS,
    MAX_FRAME,
    MAX_LINE,
    MAX_TOP_K,
    STREAM_START,
    DetectionRecord,
    LabelRecord,
    StreamDecoder,
    detections_room,
    encode_binary,
    encode_payload,
    encode_text,
    quantize,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
U32 = 0xFFFF_FFFF

# --- strategies ---------------------------------------------------------------------------------

scores = st.floats(min_value=0.0, max_value=1.0)
labels = st.integers(0, 0xFFFF)


@st.composite
def detections(draw: st.DrawFn) -> DetectionRecord:
    x0, x1 = sorted((draw(scores), draw(scores)))
    y0, y1 = sorted((draw(scores), draw(scores)))
    return DetectionRecord(draw(labels), draw(scores), (x0, y0, x1, y1))


@st.composite
def records(draw: st.DrawFn, max_top_k: int = 5, with_text: bool = True) -> LabelRecord:
    return LabelRecord(
        seq=draw(st.integers(0, U32)),
        time_ms=draw(st.integers(0, U32)),
        label=draw(labels),
        score=draw(scores),
        text=draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=20))
        if with_text else None,
        top_k=tuple(draw(st.lists(st.tuples(labels, scores), max_size=max_top_k))),
        latency_ms=draw(st.none() | st.floats(0.0, 4_000_000.0)),
        frame=draw(st.none() | st.integers(0, U32)),
        device=draw(st.none() | st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)),
        run=draw(st.none() | st.integers(0, U32)),
        detections=draw(st.none() | st.lists(detections(), max_size=8).map(tuple)),
    )


# --- COBS ---------------------------------------------------------------------------------------

@given(st.binary(max_size=254))
@settings(deadline=None)
def test_cobs_round_trip_with_exactly_one_byte_overhead(payload: bytes) -> None:
    encoded = cobs_encode(payload)
    assert len(encoded) == len(payload) + 1
    assert b"\x00" not in encoded
    assert cobs_decode(encoded) == payload


@pytest.mark.parametrize(("payload", "encoded"), [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x11\x00\x22", b"\x02\x11\x02\x22"),
    (b"\x11\x22\x00", b"\x03\x11\x22\x01"),
    (b"\x01" * 254, b"\xff" + b"\x01" * 254),
])
def test_cobs_golden(payload: bytes, encoded: bytes) -> None:
    assert cobs_encode(payload) == encoded
    assert cobs_decode(encoded) == payload


def test_cobs_refuses_long_payload_and_bad_frames() -> None:
    with pytest.raises(ValueError, match="255 bytes exceeds 254"):
        cobs_encode(b"\x01" * 255)
    assert cobs_decode(b"\x05\x11") is None  # code runs past the end
    assert cobs_decode(b"\x02\x00") is None  # a delimiter inside a frame


# --- round trips --------------------------------------------------------------------------------

@given(records())
@settings(deadline=None)
def test_binary_round_trip(record: LabelRecord) -> None:
    frame = encode_binary(record)
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    assert len(frame) <= MAX_FRAME + 1
    assert StreamDecoder("binary").feed(STREAM_START + frame) == [quantize(record, "binary")]


@given(records())
@settings(deadline=None)
def test_text_round_trip(record: LabelRecord) -> None:
    line = encode_text(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\x00" not in line
    assert StreamDecoder("text").feed(line) == [quantize(record, "text")]
    assert json.loads(line)["text" if record.text is not None else "seq"] == (
        record.text if record.text is not None else record.seq)


@given(records(), st.sampled_from(["text", "binary"]))
@settings(deadline=None)
def test_quantized_records_round_trip_exactly(record: LabelRecord, mode: str) -> None:
    # Every record the encoder can produce (a quantized one) decodes to exactly itself.
    sent = quantize(record, mode)  # type: ignore[arg-type]
    assert quantize(sent, mode) == sent  # type: ignore[arg-type]
    encode = encode_binary if mode == "binary" else encode_text
    assert encode(sent) == encode(record)
    assert StreamDecoder("auto").feed(STREAM_START + encode(sent)) == [sent]


@given(records())
@settings(deadline=None)
def test_quantization_error_bounds(record: LabelRecord) -> None:
    binary, text = quantize(record, "binary"), quantize(record, "text")
    assert abs(binary.score - record.score) <= 1 / 131070 + 1e-12
    assert abs(text.score - record.score) <= 5e-5 + 1 / 131070 + 1e-12
    if record.latency_ms is not None:
        assert binary.latency_ms is not None
        assert abs(binary.latency_ms - record.latency_ms) <= 0.0005 + 1e-6


def test_max_top_k_fits_one_frame() -> None:
    record = LabelRecord(1, 2, 3, 0.5, "x", tuple((i, 0.1) for i in range(MAX_TOP_K)), 1.0)
    assert len(encode_binary(record)) <= MAX_FRAME + 1
    assert StreamDecoder().feed(encode_binary(record)) == [quantize(record, "binary")]
    with pytest.raises(ProtocolError, match=f"at most {MAX_TOP_K} fit"):
        encode_binary(LabelRecord(1, 2, 3, 0.5, top_k=((0, 0.1),) * (MAX_TOP_K + 1)))


@pytest.mark.parametrize(("changes", "field"), [
    ({"seq": -1}, "seq"),
    ({"seq": U32 + 1}, "seq"),
    ({"time_ms": 2**40}, "time_ms"),
    ({"label": 65536}, "label"),
    ({"score": 1.0001}, "score"),
    ({"score": float("nan")}, "score"),
    ({"top_k": ((1, -0.1),)}, r"top_k\[0\] score"),
    ({"top_k": ((70000, 0.1),)}, r"top_k\[0\] label"),
    ({"latency_ms": -1.0}, "latency_ms"),
    ({"text": "\udc80"}, "text"),
    ({"file": "a\ud800"}, "file"),
    ({"run": U32 + 1}, "run"),
    ({"detections": (DetectionRecord(1, 0.5, (0.5, 0.0, 0.4, 1.0)),)}, r"detections\[0\] box"),
    ({"detections": (DetectionRecord(1, 0.5, (0.0, 0.0, 1.5, 1.0)),)}, r"detections\[0\] xmax"),
    ({"detections": (DetectionRecord(1, 2.0, (0.0, 0.0, 1.0, 1.0)),)},
     r"detections\[0\] score"),
    ({"detections": (DetectionRecord(1, 0.5, (0.0, 0.0, 1.0, 1.0)),) * (MAX_DETECTIONS + 1)},
     "detections has"),
])
def test_encoders_name_the_bad_field(changes: dict[str, Any], field: str) -> None:
    record = LabelRecord(**{"seq": 1, "time_ms": 2, "label": 3, "score": 0.5, **changes})
    for encode in (encode_binary, encode_text):
        with pytest.raises(ProtocolError, match=f"^{field} "):
            encode(record)


DOCS_DETECTOR = LabelRecord(12, 5000, 0, 0.8765, "person", (), 8.25, frame=30, run=0x1A2B3C4D,
                            detections=(DetectionRecord(0, 0.8765, (0.25, 0.1, 0.75, 0.9)),
                                        DetectionRecord(27, 0.5, (0.5, 0.5, 0.625, 0.75))))


@pytest.mark.parametrize("record", [
    LabelRecord(7, 123_456, 3, 0.9876, "cat", ((3, 0.9876), (1, 0.01)), 12.5), DOCS_DETECTOR])
def test_docs_example_frame_is_what_the_encoder_sends(record: LabelRecord) -> None:
    docs = DOCS.read_text()
    spaced = " ".join(f"{b:02x}" for b in encode_binary(record))
    assert spaced in re.sub(r"\s+", " ", docs)
    assert encode_text(record).decode().strip() in docs


def test_max_detections_fit_one_frame_and_room_counts_the_other_fields() -> None:
    box = DetectionRecord(1, 0.5, (0.0, 0.0, 1.0, 1.0))
    full = LabelRecord(1, 2, 3, 0.5, detections=(box,) * MAX_DETECTIONS)
    assert detections_room(full) == MAX_DETECTIONS == 19
    assert StreamDecoder().feed(encode_binary(full)) == [quantize(full, "binary")]
    busy = replace(full, latency_ms=1.0, frame=1, run=1, device="x" * 32, detections=())
    room = detections_room(busy)
    assert room == (254 - 19 - 12 - 33 - 1) // 12 == 15
    encode_binary(replace(busy, detections=(box,) * room))
    with pytest.raises(ProtocolError, match="more than 254"):
        encode_text(replace(busy, detections=(box,) * (room + 1)))


# --- the stream ---------------------------------------------------------------------------------

def _stream(seqs: list[int]) -> bytes:
    return STREAM_START + b"".join(encode_binary(LabelRecord(s, s, 1, 0.5)) for s in seqs)


def test_sequence_gaps_restarts_and_wrap() -> None:
    decoder = StreamDecoder("binary")
    got = decoder.feed(_stream([U32 - 1, U32, 0, 1, 2, 5, 6, 0, 1, 3, 1]))
    assert [r.seq for r in got] == [U32 - 1, U32, 0, 1, 2, 5, 6, 0, 1, 3, 1]
    stats = decoder.stats
    assert (stats.frames, stats.gaps, stats.lost, stats.restarts) == (11, 2, 3, 2)
    assert stats.noise_bytes == stats.crc_errors == stats.malformed == stats.resyncs == 0


def _flip(frame: bytes, at: int) -> bytes:
    """``frame`` with one byte changed to another nonzero value."""
    bad = bytearray(frame)
    bad[at] ^= 0x01 if bad[at] != 0x01 else 0x02
    return bytes(bad)


def test_garbage_is_counted_and_the_next_frame_resyncs() -> None:
    frame = encode_binary(LabelRecord(9, 9, 1, 0.5))
    decoder = StreamDecoder("binary")
    got = decoder.feed(b"\xde\xad\xbe\xef\x00" + frame + frame[:-5] + b"\x00" + b"\x01" * 600)
    got += decoder.feed(b"\x00" + _flip(frame, 7) + frame)
    assert [r.seq for r in got] == [9, 9]
    stats = decoder.stats
    assert stats.crc_errors + stats.malformed == 4  # garbage, truncated, overlong, flipped
    assert stats.crc_errors >= 1 and stats.resyncs == 2
    assert stats.noise_bytes == 5 + (len(frame) - 4) + 600 + 1 + len(frame)


def test_text_mode_tolerates_crlf_blank_lines_and_noise() -> None:
    line = encode_text(LabelRecord(1, 2, 3, 0.25, "dog"))
    decoder = StreamDecoder("text")
    got = decoder.feed(b"garbage\n\r\n" + line.replace(b"\n", b"\r\n") + b'{"seq": 2}\n' + line)
    assert [r.text for r in got] == ["dog", "dog"]
    assert decoder.stats.malformed == 2 and decoder.stats.resyncs == 2


def test_auto_detects_and_follows_a_device_that_changes_mode() -> None:
    decoder = StreamDecoder("auto")
    text = b"".join(encode_text(LabelRecord(s, 0, 1, 0.5, "a")) for s in range(40))
    assert len(decoder.feed(b"boot banner\n" + text)) == 40
    assert decoder.mode == "text"
    binary = _stream(list(range(300)))
    got = [r for i in range(0, len(binary), 64) for r in decoder.feed(binary[i:i + 64])]
    assert decoder.mode == "binary"
    assert [r.seq for r in got] == list(range(300))[-len(got):] and len(got) > 200


@given(st.lists(records(max_top_k=2), max_size=8), st.data())
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_chunking_does_not_change_the_result(recs: list[LabelRecord], data: st.DataObject) -> None:
    for encode in (encode_binary, encode_text):
        stream = STREAM_START + b"".join(encode(r) for r in recs)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        decoder = StreamDecoder("auto")
        got = [r for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)
               for r in decoder.feed(stream[a:b])]
        assert got == StreamDecoder("auto").feed(stream)
        assert len(got) == len(recs)


# --- fuzz ---------------------------------------------------------------------------------------

@given(st.binary(max_size=3000), st.sampled_from(["auto", "text", "binary"]))
@settings(deadline=None)
def test_arbitrary_bytes_never_raise(data: bytes, fmt: str) -> None:
    decoder = StreamDecoder(fmt)  # type: ignore[arg-type]
    got = decoder.feed(data) + decoder.feed(data[::-1])
    if fmt == "binary":
        assert got == []  # no CRC-valid frame in random bytes
    assert decoder.stats.frames == len(got)


mutations = st.lists(st.tuples(st.sampled_from(["flip", "drop", "insert"]),
                               st.integers(0, 10_000), st.integers(1, 255)), max_size=6)


def _corrupt(stream: bytes, muts: list[tuple[str, int, int]]) -> tuple[bytes, set[int]]:
    """Apply mutations at original positions; return the bytes and the touched positions."""
    touched: set[int] = set()
    out = list(stream)
    marks: list[int | None] = list(range(len(stream)))
    for op, where, value in muts:
        i = where % (len(out) + 1)
        if op == "insert":
            out.insert(i, value - 1)  # 0..254, zeros included
            for j in (i - 1, i):
                if 0 <= j < len(marks) and marks[j] is not None:
                    touched.add(marks[j])  # type: ignore[arg-type]
            marks.insert(i, None)
        elif i < len(out):
            if marks[i] is not None:
                touched.add(marks[i])  # type: ignore[arg-type]
            if op == "flip":
                out[i] ^= value
            else:
                del out[i]
                del marks[i]
    return bytes(out), touched


@given(st.lists(records(max_top_k=3, with_text=False), min_size=1, max_size=12), mutations,
       st.sampled_from(["auto", "binary"]), st.integers(1, 64))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_corrupted_binary_streams(recs: list[LabelRecord], muts: list[tuple[str, int, int]],
                                  fmt: str, step: int) -> None:
    sent = [quantize(replace(r, seq=i), "binary") for i, r in enumerate(recs)]
    frames = [encode_binary(r) for r in sent]
    stream = STREAM_START + b"".join(frames)
    corrupted, touched = _corrupt(stream, muts)
    decoder = StreamDecoder(fmt)  # type: ignore[arg-type]
    got = [r for i in range(0, len(corrupted), step) for r in decoder.feed(corrupted[i:i + step])]
    # Never a record that was not sent, never out of order or twice.
    assert all(r in sent for r in got)
    assert [r.seq for r in got] == sorted({r.seq for r in got})
    # Every frame whose bytes and both delimiters are untouched is decoded (resync at once).
    start = 0  # position of the delimiter before frame i
    for record, frame in zip(sent, frames, strict=True):
        span = range(start, start + len(frame) + 1)
        if not touched.intersection(span):
            assert record in got
        start += len(frame)
    assert decoder.stats.frames == len(got)


@given(st.lists(records(max_top_k=2), min_size=1, max_size=10), mutations)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_corrupted_text_streams_keep_intact_lines(recs: list[LabelRecord],
                                                  muts: list[tuple[str, int, int]]) -> None:
    sent = [quantize(replace(r, seq=i), "text") for i, r in enumerate(recs)]
    lines = [encode_text(r) for r in sent]
    stream = b"\n" + b"".join(lines)
    corrupted, touched = _corrupt(stream, muts)
    got = StreamDecoder("text").feed(corrupted)
    start = 0
    for record, line in zip(sent, lines, strict=True):
        if not touched.intersection(range(start, start + len(line) + 1)):
            assert record in got
        start += len(line)


@given(st.lists(st.tuples(records(max_top_k=2, with_text=False), st.binary(max_size=3000)),
                min_size=1, max_size=6), st.sampled_from(["auto", "binary"]),
       st.integers(1, 4096))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          max_examples=50)
def test_long_noise_bursts_between_frames(pairs: list[tuple[LabelRecord, bytes]], fmt: str,
                                          step: int) -> None:
    # Bursts longer than a frame and than the auto-detection window; each ends in a delimiter,
    # so every frame after one is intact and must be decoded.
    sent = [quantize(replace(r, seq=i), "binary") for i, (r, _) in enumerate(pairs)]
    stream = b"".join(noise + b"\x00" + encode_binary(r)
                      for r, (_, noise) in zip(sent, pairs, strict=True))
    decoder = StreamDecoder(fmt)  # type: ignore[arg-type]
    got = [r for i in range(0, len(stream), step) for r in decoder.feed(stream[i:i + step])]
    assert got == sent


# --- frames skipped on purpose vs records lost ---------------------------------------------------

def _paired_stream(pairs: list[tuple[int, int]], mode: str) -> bytes:
    encode = encode_binary if mode == "binary" else encode_text
    return b"".join(encode(LabelRecord(seq, 0, 1, 0.5, frame=frame, device="cam-1"))
                    for seq, frame in pairs)


@pytest.mark.parametrize("mode", ["text", "binary"])
def test_on_change_skips_are_not_lost_but_missing_records_are(mode: str) -> None:
    # seq counts records sent, frame counts camera frames: 0..3 in order with frames skipped,
    # then record 4 lost on the wire (a seq gap), then 5 and 6.
    pairs = [(0, 0), (1, 10), (2, 11), (3, 40), (5, 60), (6, 61)]
    decoder = StreamDecoder(mode)  # type: ignore[arg-type]
    got = decoder.feed(_paired_stream(pairs, mode))
    assert [(r.seq, r.frame, r.device) for r in got] == [(s, f, "cam-1") for s, f in pairs]
    stats = decoder.stats
    assert (stats.skipped, stats.gaps, stats.lost, stats.restarts) == (9 + 28, 1, 1, 0)


# --- every field from the wire is checked (text as binary) ---------------------------------------

GOOD = encode_text(LabelRecord(0, 0, 1, 0.5, "cat"))


@pytest.mark.parametrize("bad", [
    b'{"seq":1,"time_ms":1,"label":1,"text":"\\ud800","score":0.5}',
    b'{"seq":1,"time_ms":1,"label":1,"text":"a\\udfff b","score":0.5}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"device":"\\ud800"}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"device":"' + b"x" * 33 + b'"}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"file":"\\udc80.jpg"}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"latency_ms":4294968}',
    b'{"seq":1,"time_ms":1,"label":1,"score":NaN}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"run":"xyz"}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"run":"123456789"}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"run":7}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":null}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":[[1,0.5,0.6,0,0.5,1]]}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":[[1,0.5,0,0,1,1.5]]}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":[[1,0.5,0,0,1]]}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":[[70000,0.5,0,0,1,1]]}',
    b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"detections":[' + b",".join(
        [b"[1,0.5,0,0,1,1]"] * (MAX_DETECTIONS + 1)) + b"]}",
])
def test_text_fields_are_checked_as_binary_ones(bad: bytes) -> None:
    decoder = StreamDecoder("text")
    got = decoder.feed(GOOD + bad + b"\n" + GOOD.replace(b'"seq":0', b'"seq":2'))
    assert [r.seq for r in got] == [0, 2]
    assert decoder.stats.malformed == 1
    for record in got:  # what comes out is printable and publishable as UTF-8
        json.dumps(record.text, ensure_ascii=False).encode("utf-8")


def test_text_lines_over_the_limit_are_dropped() -> None:
    def line_of(size: int) -> bytes:
        head = b'{"seq":1,"time_ms":1,"label":1,"score":0.5,"text":"'
        return head + b"x" * (size - len(head) - 3) + b'"}\n'

    assert len(line_of(MAX_LINE)) == MAX_LINE
    for size, kept in ((MAX_LINE, True), (MAX_LINE + 1, False), (2150, False)):
        for step in (1, 97, 4096):  # arriving whole or in pieces
            decoder = StreamDecoder("text")
            data = GOOD + line_of(size) + GOOD
            got = [r for i in range(0, len(data), step) for r in decoder.feed(data[i:i + step])]
            assert len(got) == (3 if kept else 2), (size, step)
            assert decoder.stats.malformed == (0 if kept else 1)


def _frame(payload: bytes) -> bytes:
    from edge.serial.cobs import cobs_encode

    return cobs_encode(payload + struct.pack("<I", zlib.crc32(payload))) + b"\x00"


def test_binary_detections_are_checked() -> None:
    box = DetectionRecord(2, 0.5, (0.0, 0.25, 0.5, 0.75))
    good = encode_payload(LabelRecord(1, 2, 3, 0.5, detections=(box,)))[:-4]
    swapped = bytearray(good)
    swapped[-8:-4], swapped[-4:] = good[-4:], good[-8:-4]  # xmax < xmin, ymax < ymin
    short_count = bytearray(good)
    short_count[-13] = 2  # says two detections, carries one
    no_count = good[:-13]  # flag set, the section missing
    decoder = StreamDecoder("binary")
    got = decoder.feed(b"\x00" + _frame(good) + _frame(bytes(swapped)) + _frame(bytes(short_count))
                       + _frame(no_count) + _frame(good))
    assert [r.detections for r in got] == [quantize(LabelRecord(1, 2, 3, 0.5, detections=(box,)),
                                                    "binary").detections] * 2
    assert decoder.stats.malformed == 3 and decoder.stats.crc_errors == 0


def test_device_names_are_bounded() -> None:
    with pytest.raises(ProtocolError, match=r"^device "):
        encode_binary(LabelRecord(0, 0, 0, 0.0, device="x" * 33))
    with pytest.raises(ProtocolError, match=r"^device "):
        encode_text(LabelRecord(0, 0, 0, 0.0, device=""))
    big = LabelRecord(0, 0, 0, 0.0, top_k=((1, 0.5),) * MAX_TOP_K, latency_ms=1.0,
                      frame=1, device="cam")
    with pytest.raises(ProtocolError, match="more than 254"):
        encode_binary(big)


# --- whatever a decoder yields can be printed, published and sent again --------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**33) | st.floats(allow_nan=True)
    | st.text(max_size=40),  # any code point, lone surrogates included
    lambda inner: st.lists(inner, max_size=6), max_leaves=30)
_KEYS = ("seq", "time_ms", "label", "score", "text", "top_k", "latency_ms", "frame", "device",
         "file", "run", "detections")


@st.composite
def wire_objects(draw: st.DrawFn) -> bytes:
    """JSON objects a device might send: the record's keys with any values, some valid."""
    obj: dict[str, Any] = {"seq": draw(st.integers(0, 5)), "time_ms": 0, "label": 1,
                           "score": draw(scores)}
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=5)):
        obj[key] = draw(json_values | st.lists(st.lists(scores, min_size=6, max_size=6),
                                               max_size=3))
    return json.dumps(obj).encode()  # ensure_ascii: surrogates travel as \ud800 escapes


@given(wire_objects())
@settings(deadline=None, max_examples=400)
def test_every_text_record_decoded_is_printable_and_reencodable(line: bytes) -> None:
    from edge.serial.gateway import record_json
    from edge.serial.protocol import check_record

    for record in StreamDecoder("text").feed(line + b"\n"):
        check_record(record)  # every field in range: it could be sent again in either mode
        json.dumps(record_json(record), ensure_ascii=False).encode("utf-8")


@given(st.binary(min_size=15, max_size=250))
@example(b"\x03" + b"\x00" * 14)  # latency and frame announced, one of them missing
@example(b"\x10" + b"\x00" * 12 + b"\x04" + b"\x00" * 9)  # top-k count past the end
@settings(deadline=None, max_examples=400)
def test_every_binary_record_decoded_is_reencodable(body: bytes) -> None:
    # Only CRC-valid payloads reach decode_payload, so a device can craft any of these: a
    # record or None, never an exception.
    from edge.serial.protocol import check_record, decode_payload

    payload = bytes([1, body[0] & 0x1F]) + body[1:]
    record = decode_payload(payload + struct.pack("<I", zlib.crc32(payload)))
    if record is not None:
        check_record(record)
        assert encode_payload(record)[:-4] == payload
