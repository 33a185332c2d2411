"""The serial label protocol: records in, bytes out; bytes in, records out. No port in sight.

Two modes share one record (see ``docs/protocol.md`` for the byte layouts):

* text: one compact JSON object per line, readable in any serial monitor;
* binary: a COBS frame delimited by 0x00 carrying a little-endian payload with a CRC-32.

:class:`StreamDecoder` turns an arbitrary byte stream into records. It never raises on input:
garbage, line noise, truncated and corrupted frames are counted in :class:`DecoderStats`, and in
binary mode a record is yielded only if its length, version and CRC-32 all check out.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, NamedTuple

from edge.errors import ProtocolError
from edge.serial.cobs import MAX_PAYLOAD, cobs_decode, cobs_encode

Mode = Literal["text", "binary"]
Format = Literal["auto", "text", "binary"]

VERSION = 1
STREAM_START = b"\x00"
FLAG_LATENCY = 0x01
FLAG_FRAME = 0x02
FLAG_DEVICE = 0x04
FLAG_RUN = 0x08
FLAG_DETECTIONS = 0x10
KNOWN_FLAGS = FLAG_LATENCY | FLAG_FRAME | FLAG_DEVICE | FLAG_RUN | FLAG_DETECTIONS
MAX_DEVICE = 32  # bytes of UTF-8 in a device name
U32_MAX = 0xFFFF_FFFF
LABEL_MAX = 0xFFFF
SCORE_SCALE = 65535
TEXT_SCORE_SCALE = 10000
MAX_LINE = 2048

_HEADER = struct.Struct("<BBIIHHB")  # version, flags, seq, time_ms, label, score, top-k count
_U32 = struct.Struct("<I")
_ENTRY = struct.Struct("<HH")  # top-k entry: label, score
_BOX = struct.Struct("<HHHHHH")  # detection: label, score, xmin, ymin, xmax, ymax
MIN_PAYLOAD = _HEADER.size + _U32.size
MAX_TOP_K = (MAX_PAYLOAD - MIN_PAYLOAD - _U32.size) // _ENTRY.size
MAX_DETECTIONS = (MAX_PAYLOAD - MIN_PAYLOAD - 1) // _BOX.size
_HEX = frozenset("0123456789abcdefABCDEF")


class DetectionRecord(NamedTuple):
    """One object of a detector's record: label index, score, and its box normalised to the frame.

    Attributes:
        label: label index, uint16.
        score: score in [0, 1].
        box: ``(xmin, ymin, xmax, ymax)`` as fractions of the frame's width and height, each in
            [0, 1] with ``xmin <= xmax`` and ``ymin <= ymax`` (uint16 on the wire).
    """

    label: int
    score: float
    box: tuple[float, float, float, float]
MAX_FRAME = MAX_PAYLOAD + 1  # COBS-encoded, without the 0x00 delimiter


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """One classification result as it travels over the serial line.

    Attributes:
        seq: sequence number, uint32; wraps to 0 after 2**32 - 1.
        time_ms: device time in milliseconds, uint32.
        label: label index, uint16.
        score: score of ``label`` in [0, 1].
        text: label text (text mode only; binary frames do not carry it).
        top_k: further ``(label, score)`` pairs, at most :data:`MAX_TOP_K`.
        latency_ms: inference latency in milliseconds (microsecond resolution on the wire).
        frame: the sender's frame counter, uint32. ``seq`` counts the records sent, so a gap in
            ``seq`` is a lost record; a gap in ``frame`` with ``seq`` in order is frames the
            sender skipped on purpose (``--on-change``).
        device: the sender's name (1-32 bytes of UTF-8), so a gateway knows who is talking.
        file: name of the image file the label is for (text mode only, when the sender
            labels files, e.g. ``edge-run --camera FOLDER``).
        run: the sender's run id, uint32, new at every start: ``(device, run, seq)`` names a
            record uniquely, so consumers can drop duplicates although ``seq`` restarts at 0.
        detections: a detector's objects, best first (at most :data:`MAX_DETECTIONS`); None
            for a record that is not a detector's, ``()`` for a detector that found nothing.
    """

    seq: int
    time_ms: int
    label: int
    score: float
    text: str | None = None
    top_k: tuple[tuple[int, float], ...] = ()
    latency_ms: float | None = None
    frame: int | None = None
    device: str | None = None
    file: str | None = None
    run: int | None = None
    detections: tuple[DetectionRecord, ...] | None = None


# --- quantization ------------------------------------------------------------------------------

def quantize_score(score: float) -> int:
    """Score in [0, 1] -> uint16 ``round(score * 65535)``, halves rounded up (as the C header)."""
    return int(score * SCORE_SCALE + 0.5)


def _text_score(q: int) -> int:
    """uint16 score -> ten-thousandths, rounded half up in integers (as the C header)."""
    return (q * 2 * TEXT_SCORE_SCALE + SCORE_SCALE) // (2 * SCORE_SCALE)


def _latency_us(latency_ms: float) -> int:
    return int(latency_ms * 1000 + 0.5)


def quantize(record: LabelRecord, mode: Mode) -> LabelRecord:
    """The record exactly as a receiver decodes it after sending it in ``mode``.

    Binary scores are uint16 (error at most 1/131070 ~ 7.7e-6); text scores have four decimals
    taken from that uint16 (error at most 5e-5 + 7.7e-6); latency has microsecond resolution.
    Binary frames drop ``text``.
    """
    if mode == "binary":
        def score(s: float) -> float:
            return quantize_score(s) / SCORE_SCALE
    else:
        def score(s: float) -> float:
            return _text_score(quantize_score(s)) / TEXT_SCORE_SCALE
    latency = None if record.latency_ms is None else _latency_us(record.latency_ms) / 1000
    detections = None if record.detections is None else tuple(
        DetectionRecord(d.label, score(d.score), (score(d.box[0]), score(d.box[1]),
                                                  score(d.box[2]), score(d.box[3])))
        for d in record.detections)
    return replace(record, score=score(record.score),
                   top_k=tuple((label, score(s)) for label, s in record.top_k),
                   text=record.text if mode == "text" else None, latency_ms=latency,
                   file=record.file if mode == "text" else None, detections=detections)


# --- validation ---------------------------------------------------------------------------------

def _check_int(name: str, value: object, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ProtocolError(f"{name} (={value!r}) must be an integer in [0, {high}]")


def _check_score(name: str, value: object) -> None:
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not 0.0 <= value <= 1.0):
        raise ProtocolError(f"{name} (={value!r}) must be a number in [0.0, 1.0]")


def check_record(record: LabelRecord) -> None:
    """Raise :class:`ProtocolError` naming the field if ``record`` cannot be encoded."""
    _check_int("seq", record.seq, U32_MAX)
    _check_int("time_ms", record.time_ms, U32_MAX)
    _check_int("label", record.label, LABEL_MAX)
    _check_score("score", record.score)
    if len(record.top_k) > MAX_TOP_K:
        raise ProtocolError(f"top_k has {len(record.top_k)} entries; at most {MAX_TOP_K} fit")
    for i, (label, score) in enumerate(record.top_k):
        _check_int(f"top_k[{i}] label", label, LABEL_MAX)
        _check_score(f"top_k[{i}] score", score)
    if record.latency_ms is not None:
        lat = record.latency_ms
        if not isinstance(lat, (int, float)) or not 0 <= lat or _latency_us(lat) > U32_MAX:
            raise ProtocolError(f"latency_ms (={lat!r}) must be in [0, {U32_MAX / 1000}]")
    if record.text is not None:
        if not isinstance(record.text, str):
            raise ProtocolError(f"text (={record.text!r}) must be a string or None")
        _utf8("text", record.text)
    if record.frame is not None:
        _check_int("frame", record.frame, U32_MAX)
    if record.run is not None:
        _check_int("run", record.run, U32_MAX)
    if record.file is not None:
        if not isinstance(record.file, str):
            raise ProtocolError(f"file (={record.file!r}) must be a string or None")
        _utf8("file", record.file)
    if record.detections is not None:
        _check_detections(record.detections)
    if record.device is not None:
        if not isinstance(record.device, str) or not 1 <= len(
                _utf8("device", record.device)) <= MAX_DEVICE:
            raise ProtocolError(f"device (={record.device!r}) must be 1 to {MAX_DEVICE} bytes "
                                "of UTF-8")
    size = _payload_size(record)
    if size > MAX_PAYLOAD:
        raise ProtocolError(f"a binary frame of this record needs {size} bytes, more than "
                            f"{MAX_PAYLOAD}; send fewer top_k entries or detections, or a "
                            "shorter device name")


def _check_detections(detections: tuple[DetectionRecord, ...]) -> None:
    if len(detections) > MAX_DETECTIONS:
        raise ProtocolError(f"detections has {len(detections)} entries; at most "
                            f"{MAX_DETECTIONS} fit")
    for i, d in enumerate(detections):
        _check_int(f"detections[{i}] label", d.label, LABEL_MAX)
        _check_score(f"detections[{i}] score", d.score)
        if len(d.box) != 4:
            raise ProtocolError(f"detections[{i}] box (={d.box!r}) must be 4 numbers")
        for name, value in zip(("xmin", "ymin", "xmax", "ymax"), d.box, strict=True):
            _check_score(f"detections[{i}] {name}", value)
        if d.box[0] > d.box[2] or d.box[1] > d.box[3]:
            raise ProtocolError(f"detections[{i}] box (={d.box!r}) must have xmin <= xmax "
                                "and ymin <= ymax")


def detections_room(record: LabelRecord) -> int:
    """How many detections fit in one frame of ``record`` beside its other fields."""
    base = _payload_size(replace(record, detections=None)) + 1
    return max(0, min(MAX_DETECTIONS, (MAX_PAYLOAD - base) // _BOX.size))


def _utf8(name: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ProtocolError(f"{name} (={text!r}) is not encodable as UTF-8") from e


def _payload_size(record: LabelRecord) -> int:
    device = 0 if record.device is None else 1 + len(record.device.encode("utf-8", "replace"))
    detections = 0 if record.detections is None else 1 + len(record.detections) * _BOX.size
    return (_HEADER.size + (record.latency_ms is not None) * _U32.size
            + (record.frame is not None) * _U32.size + device
            + (record.run is not None) * _U32.size
            + len(record.top_k) * _ENTRY.size + detections + _U32.size)


# --- binary mode --------------------------------------------------------------------------------

def encode_payload(record: LabelRecord) -> bytes:
    """The binary payload of ``record`` before COBS: header, latency, top-k, CRC-32."""
    check_record(record)
    flags = ((record.latency_ms is not None) * FLAG_LATENCY
             | (record.frame is not None) * FLAG_FRAME | (record.device is not None) * FLAG_DEVICE
             | (record.run is not None) * FLAG_RUN
             | (record.detections is not None) * FLAG_DETECTIONS)
    parts = [_HEADER.pack(VERSION, flags, record.seq, record.time_ms, record.label,
                          quantize_score(record.score), len(record.top_k))]
    if record.latency_ms is not None:
        parts.append(_U32.pack(_latency_us(record.latency_ms)))
    if record.frame is not None:
        parts.append(_U32.pack(record.frame))
    if record.device is not None:
        name = record.device.encode("utf-8")
        parts.append(bytes([len(name)]) + name)
    if record.run is not None:
        parts.append(_U32.pack(record.run))
    parts.extend(_ENTRY.pack(label, quantize_score(s)) for label, s in record.top_k)
    if record.detections is not None:
        parts.append(bytes([len(record.detections)]))
        parts.extend(_BOX.pack(d.label, quantize_score(d.score),
                               *(quantize_score(v) for v in d.box))
                     for d in record.detections)
    payload = b"".join(parts)
    return payload + _U32.pack(zlib.crc32(payload))


def encode_binary(record: LabelRecord) -> bytes:
    """One COBS frame of ``record``, ending in its 0x00 delimiter.

    Raises:
        ProtocolError: a field is out of range (the message names it).
    """
    return cobs_encode(encode_payload(record)) + b"\x00"


def crc_ok(payload: bytes) -> bool:
    """Whether the last four bytes of ``payload`` are the CRC-32 of the rest."""
    end = len(payload) - 4
    return end >= 0 and zlib.crc32(memoryview(payload)[:end]) == _U32.unpack_from(payload, end)[0]


def decode_payload(payload: bytes) -> LabelRecord | None:
    """The record in a CRC-checked payload, or None if its version, flags or length are wrong."""
    if len(payload) < MIN_PAYLOAD:
        return None
    version, flags, seq, time_ms, label, score, count = _HEADER.unpack_from(payload)
    if version != VERSION or flags & ~KNOWN_FLAGS:
        return None
    crc_at = len(payload) - _U32.size
    offset = _HEADER.size
    fixed = (flags & FLAG_LATENCY != 0) + (flags & FLAG_FRAME != 0) + (flags & FLAG_RUN != 0)
    if offset + fixed * _U32.size > crc_at:  # the fields the flags announce are not all there
        return None
    latency = frame = device = run = None
    if flags & FLAG_LATENCY:
        latency = _U32.unpack_from(payload, offset)[0] / 1000
        offset += _U32.size
    if flags & FLAG_FRAME:
        frame = _U32.unpack_from(payload, offset)[0]
        offset += _U32.size
    if flags & FLAG_DEVICE:
        device, offset = _read_device(payload, offset)
        if device is None:
            return None
    if flags & FLAG_RUN:
        if offset + _U32.size > crc_at:
            return None
        run = _U32.unpack_from(payload, offset)[0]
        offset += _U32.size
    top_end = offset + count * _ENTRY.size
    # The top-k list must end at the CRC, or just before the detections' count byte.
    if top_end > crc_at or (top_end == crc_at) != (not flags & FLAG_DETECTIONS):
        return None
    top_k = tuple((lab, s / SCORE_SCALE) for lab, s in
                  _ENTRY.iter_unpack(payload[offset:top_end]))
    detections = None
    if flags & FLAG_DETECTIONS:
        detections = _read_detections(payload, top_end)
        if detections is None:
            return None
    return LabelRecord(seq, time_ms, label, score / SCORE_SCALE, None, top_k, latency, frame,
                       device, None, run, detections)


def _read_detections(payload: bytes, offset: int) -> tuple[DetectionRecord, ...] | None:
    """The count-prefixed detections at ``offset``, which must end at the CRC (None if bad)."""
    count = payload[offset]
    start = offset + 1
    if len(payload) != start + count * _BOX.size + _U32.size:
        return None
    out = []
    for label, score, *box in _BOX.iter_unpack(payload[start:start + count * _BOX.size]):
        if box[0] > box[2] or box[1] > box[3]:
            return None
        out.append(DetectionRecord(label, score / SCORE_SCALE,
                                   (box[0] / SCORE_SCALE, box[1] / SCORE_SCALE,
                                    box[2] / SCORE_SCALE, box[3] / SCORE_SCALE)))
    return tuple(out)


def _read_device(payload: bytes, offset: int) -> tuple[str | None, int]:
    """The length-prefixed device name at ``offset`` and the offset after it (None if bad)."""
    size = payload[offset] if offset < len(payload) else 0
    end = offset + 1 + size
    if not 1 <= size <= MAX_DEVICE or end > len(payload) - _U32.size:
        return None, offset
    try:
        return payload[offset + 1:end].decode("utf-8"), end
    except UnicodeDecodeError:
        return None, offset


FrameError = Literal["malformed", "crc_errors"]


def decode_frame(chunk: bytes) -> LabelRecord | FrameError:
    """The record in one COBS frame (without its 0x00), or which check it failed."""
    if not MIN_PAYLOAD < len(chunk) <= MAX_FRAME:
        return "malformed"
    payload = cobs_decode(chunk)
    if payload is None:
        return "malformed"
    if not crc_ok(payload):
        return "crc_errors"
    try:
        record = decode_payload(payload)
    except (struct.error, IndexError):  # pragma: no cover - decode_payload checks every bound
        return "malformed"
    return "malformed" if record is None else record


# --- text mode ----------------------------------------------------------------------------------

_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)} | {ord('"'): '\\"', ord("\\"): "\\\\"}


def _json_string(text: str) -> str:
    """JSON string literal escaping only ``"``, ``\\`` and control characters (as the C header)."""
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _fixed(value: int, scale: int, digits: int) -> str:
    return f"{value // scale}.{value % scale:0{digits}d}"


def _text_fraction(value: float) -> str:
    return _fixed(_text_score(quantize_score(value)), TEXT_SCORE_SCALE, 4)


def _text_detection(d: DetectionRecord) -> str:
    return f"[{d.label},{','.join(_text_fraction(v) for v in (d.score, *d.box))}]"


def encode_text(record: LabelRecord) -> bytes:
    """One compact JSON object of ``record`` and ``b"\\n"``; keys in a fixed order.

    Raises:
        ProtocolError: a field is out of range, or the line would exceed :data:`MAX_LINE`.
    """
    check_record(record)
    parts = [f'{{"seq":{record.seq},"time_ms":{record.time_ms},"label":{record.label}']
    if record.text is not None:
        parts.append(f',"text":{_json_string(record.text)}')
    parts.append(f',"score":{_fixed(_text_score(quantize_score(record.score)), 10000, 4)}')
    if record.top_k:
        entries = ",".join(f"[{label},{_fixed(_text_score(quantize_score(s)), 10000, 4)}]"
                           for label, s in record.top_k)
        parts.append(f',"top_k":[{entries}]')
    if record.latency_ms is not None:
        parts.append(f',"latency_ms":{_fixed(_latency_us(record.latency_ms), 1000, 3)}')
    if record.frame is not None:
        parts.append(f',"frame":{record.frame}')
    if record.device is not None:
        parts.append(f',"device":{_json_string(record.device)}')
    if record.run is not None:
        parts.append(f',"run":"{record.run:08x}"')
    if record.detections is not None:
        parts.append(f',"detections":[{",".join(_text_detection(d) for d in record.detections)}]')
    if record.file is not None:
        parts.append(f',"file":{_json_string(record.file)}')
    parts.append("}\n")
    line = "".join(parts).encode("utf-8")
    if len(line) > MAX_LINE:
        raise ProtocolError(f"text line of {len(line)} bytes exceeds {MAX_LINE}; "
                            "shorten the label text or top_k")
    return line


def _is_int(value: Any, high: int) -> bool:
    return type(value) is int and 0 <= value <= high


def _is_score(value: Any) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0


def _pair(entry: Any) -> tuple[int, float] | None:
    if (isinstance(entry, list) and len(entry) == 2 and _is_int(entry[0], LABEL_MAX)
            and _is_score(entry[1])):
        return entry[0], float(entry[1])
    return None


def _is_text(value: Any) -> bool:
    """A JSON string that is valid UTF-8 (no lone surrogates such as ``"\\ud800"``)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _run_id(value: Any) -> int | None:
    """A run id as text mode carries it: 1 to 8 hex digits (None if it is not one)."""
    if isinstance(value, str) and 1 <= len(value) <= 8 and _HEX.issuperset(value):
        return int(value, 16)
    return None


def _detection(entry: Any) -> DetectionRecord | None:
    if not (isinstance(entry, list) and len(entry) == 6 and _is_int(entry[0], LABEL_MAX)
            and all(_is_score(v) for v in entry[1:])):
        return None
    box = (float(entry[2]), float(entry[3]), float(entry[4]), float(entry[5]))
    if box[0] > box[2] or box[1] > box[3]:
        return None
    return DetectionRecord(entry[0], float(entry[1]), box)


def _detections(value: Any) -> tuple[DetectionRecord, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_DETECTIONS:
        return None
    out = [_detection(entry) for entry in value]
    return None if any(d is None for d in out) else tuple(d for d in out if d is not None)


def decode_text_line(line: bytes) -> LabelRecord | None:
    """The record in one text line (without its newline), or None if it is not one.

    Every field is checked as the binary decoder checks it: ranges, UTF-8 strings (a lone
    surrogate escape is not one), the device name's length, and the line's length.
    """
    if len(line) >= MAX_LINE:  # the newline makes it MAX_LINE + 1 or more
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    seq, time_ms, label, score = (obj.get(k) for k in ("seq", "time_ms", "label", "score"))
    text, top_k, latency = obj.get("text"), obj.get("top_k", []), obj.get("latency_ms")
    frame, device = obj.get("frame"), obj.get("device")
    file, run = obj.get("file"), obj.get("run")
    if not (_is_int(seq, U32_MAX) and _is_int(time_ms, U32_MAX) and _is_int(label, LABEL_MAX)
            and _is_score(score) and (text is None or _is_text(text))
            and (file is None or _is_text(file))
            and isinstance(top_k, list) and len(top_k) <= MAX_TOP_K):
        return None
    if latency is not None and not (type(latency) in (int, float)
                                    and 0 <= latency <= U32_MAX / 1000):
        return None
    if frame is not None and not _is_int(frame, U32_MAX):
        return None
    if device is not None and not (_is_text(device)
                                   and 1 <= len(device.encode("utf-8")) <= MAX_DEVICE):
        return None
    run_id = None if run is None else _run_id(run)
    if run is not None and run_id is None:
        return None
    detections = None
    if "detections" in obj:
        detections = _detections(obj["detections"])
        if detections is None:
            return None
    pairs = [_pair(entry) for entry in top_k]
    if any(p is None for p in pairs):
        return None
    record = LabelRecord(obj["seq"], obj["time_ms"], obj["label"], float(obj["score"]), text,
                         tuple(p for p in pairs if p is not None),
                         None if latency is None else float(latency), frame, device, file,
                         run_id, detections)
    # As in binary mode: the record fits one frame (so a gateway may forward it as one).
    return record if _payload_size(record) <= MAX_PAYLOAD else None


# --- the stream ---------------------------------------------------------------------------------

@dataclass
class DecoderStats:
    """What a :class:`StreamDecoder` has seen so far.

    Attributes:
        frames: records yielded.
        crc_errors: binary frames whose CRC-32 did not match (corrupted or truncated).
        malformed: chunks that are not a frame at all: bad COBS, length, version or JSON.
        noise_bytes: bytes discarded outside valid frames.
        resyncs: returns to a valid frame after discarding bytes.
        gaps: jumps forward in the sequence number.
        lost: sequence numbers skipped by those jumps (records that never arrived).
        skipped: frames the sender skipped on purpose (``frame`` jumps with ``seq`` in order,
            e.g. ``--on-change``); not lost.
        restarts: sequence numbers going back (the device restarted).
    """

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    noise_bytes: int = 0
    resyncs: int = 0
    gaps: int = 0
    lost: int = 0
    skipped: int = 0
    restarts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DETECT_WINDOW = 4096
_BLANK = b" \t\r\n\x00"  # ignored around text lines; 0x00 so STREAM_START works in both modes
UNLOCK_AFTER = 1024  # noise bytes without a record after which ``auto`` detects the mode again


class StreamDecoder:
    """Bytes in, records out, for a stream in either mode; never raises on input.

    Args:
        format: ``"text"``, ``"binary"``, or ``"auto"`` to detect the mode from the first valid
            record, and again after :data:`UNLOCK_AFTER` bytes of noise without a record (a
            device reflashed to the other mode).
    """

    def __init__(self, format: Format = "auto") -> None:
        if format not in ("auto", "text", "binary"):
            raise ProtocolError(f"format (={format!r}) must be one of auto, text, binary")
        self.format: Format = format
        self.mode: Mode | None = None if format == "auto" else format
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._last_seq: int | None = None
        self._last_frame: int | None = None
        self._dirty = False
        self._discarding = False
        self._bad_bytes = 0

    def feed(self, data: bytes) -> list[LabelRecord]:
        """Decode what ``data`` completes; keep the unfinished tail for the next call."""
        self._buf += data
        if self.mode is None and not self._detect(b"\x00" in data or b"\n" in data):
            return []
        if self.mode == "binary":
            return self._feed(b"\x00", MAX_FRAME, self._parse_frame)
        return self._feed(b"\n", MAX_LINE, self._parse_line)

    def _detect(self, scan: bool) -> bool:
        """Lock ``self.mode`` once the buffer holds a valid record of either mode."""
        if scan:
            buf = bytes(self._buf)
            if any(not isinstance(decode_frame(c), str) for c in buf.split(b"\x00")[:-1]):
                self.mode = "binary"
            elif any(decode_text_line(c.strip(_BLANK)) for c in buf.split(b"\n")[:-1]):
                self.mode = "text"
        if self.mode is None:
            if len(self._buf) > DETECT_WINDOW:
                drop = len(self._buf) - MAX_LINE
                self._noise(drop)
                del self._buf[:drop]
            return False
        self._discarding = False
        self._bad_bytes = 0
        return True

    def _feed(self, sep: bytes, limit: int,
              parse: Callable[[bytes], LabelRecord | None]) -> list[LabelRecord]:
        """Parse every complete chunk ending in ``sep``; a tail over ``limit`` bytes is noise."""
        buf = self._buf
        out: list[LabelRecord] = []
        end = buf.rfind(sep)
        if end >= 0:
            chunks = bytes(buf[:end]).split(sep)
            del buf[:end + 1]
            for i, chunk in enumerate(chunks):
                if self._discarding:
                    self._discarding = False
                    self._noise(len(chunk) + 1)
                elif chunk:
                    record = parse(chunk)
                    if record is not None:
                        out.append(record)
                    elif self._bad_bytes >= UNLOCK_AFTER and self.format == "auto":
                        return out + self._unlock(b"".join(c + sep for c in chunks[i + 1:]))
        if len(buf) > limit:
            self._bad(len(buf), "malformed")
            buf.clear()
            self._discarding = True
            if self._bad_bytes >= UNLOCK_AFTER and self.format == "auto":
                return out + self._unlock(b"")
        return out

    def _unlock(self, unparsed: bytes) -> list[LabelRecord]:
        """Much noise and no record: the device may have changed mode; detect it again."""
        self.mode = None
        self._discarding = False
        self._buf[:0] = unparsed
        return self.feed(b"") if self._detect(True) else []

    def _noise(self, count: int) -> None:
        self.stats.noise_bytes += count
        self._bad_bytes += count
        self._dirty = True

    def _bad(self, size: int, kind: FrameError) -> None:
        if kind == "crc_errors":
            self.stats.crc_errors += 1
        else:
            self.stats.malformed += 1
        self._noise(size)

    def _good(self, record: LabelRecord) -> LabelRecord:
        stats = self.stats
        stats.frames += 1
        self._bad_bytes = 0
        if self._dirty:
            stats.resyncs += 1
            self._dirty = False
        last = self._last_seq
        if last is not None:
            delta = (record.seq - last) & U32_MAX
            if delta == 1:
                stats.skipped += _skipped(self._last_frame, record.frame)
            elif record.seq != 0 and 1 < delta < 1 << 31:
                stats.gaps += 1
                stats.lost += delta - 1
            else:
                stats.restarts += 1
        self._last_seq = record.seq
        self._last_frame = record.frame
        return record

    def _parse_frame(self, chunk: bytes) -> LabelRecord | None:
        result = decode_frame(chunk)
        if isinstance(result, str):
            self._bad(len(chunk) + 1, result)
            return None
        return self._good(result)

    def _parse_line(self, line: bytes) -> LabelRecord | None:
        stripped = line.strip(_BLANK)
        if not stripped:  # blank lines, CR LF endings and STREAM_START are fine
            return None
        record = decode_text_line(stripped)
        if record is None:
            self._bad(len(line) + 1, "malformed")
            return None
        return self._good(record)



def _skipped(last_frame: int | None, frame: int | None) -> int:
    """Frames skipped on purpose between two consecutive records (0 if unknown)."""
    if last_frame is None or frame is None:
        return 0
    delta = (frame - last_frame) & U32_MAX
    return delta - 1 if 1 < delta < 1 << 31 else 0
