"""The model image written into a board's model slot: a 64-byte header, the model, its labels.

Layout (all integers little-endian; ``firmware_export/c/edge_model_image.h`` checks the same)::

    offset size field
    0      4    magic "EDGM"
    4      2    format version (1)
    6      2    header size (64)
    8      4    payload length (model + labels)
    12     4    model length
    16     4    CRC-32 of the payload
    20     4    tensor arena size the model needs, in bytes
    24     4    label count
    28     4    board identity: CRC-32 of the board name (see :func:`board_id`)
    32     28   reserved, zero
    60     4    CRC-32 of bytes 0..59 of the header
    64     ...  model (a .tflite flatbuffer, "TFL3" at bytes 4..8), then labels as UTF-8 lines

The model starts 64 bytes into the slot, so it keeps the slot's (at least 16-byte) alignment.
CRC-32 is the zlib/IEEE one (reflected, polynomial 0xEDB88320); it catches every single-bit error
in the header and in the payload.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from edge.errors import FlashError, LabelError, ModelError

MAGIC = b"EDGM"
FORMAT_VERSION = 1
HEADER_SIZE = 64
TFLITE_IDENTIFIER = b"TFL3"
MIN_MODEL_SIZE = 8  # enough for the root offset and the file identifier

_FIELDS = struct.Struct("<4sHHIIIIII28x")  # the 60 bytes the header CRC covers
_CRC = struct.Struct("<I")
U32_MAX = 2**32 - 1


@dataclass(frozen=True)
class ImageHeader:
    """The decoded header of a model image."""

    payload_length: int
    model_length: int
    payload_crc: int
    arena_size: int
    label_count: int
    board_id: int
    version: int = FORMAT_VERSION


@dataclass(frozen=True)
class ModelImage:
    """A decoded model image."""

    header: ImageHeader
    model: bytes
    labels: tuple[str, ...]


def board_id(name: str) -> int:
    """The board identity stored in images: CRC-32 of the board's name in UTF-8.

    The firmware gets the same number from edge-export as ``EDGE_BOARD_ID``.
    """
    return zlib.crc32(name.encode("utf-8"))


def pack_header(header: ImageHeader) -> bytes:
    """The 64 header bytes, with the header CRC filled in.

    Raises:
        FlashError: a field does not fit its 16 or 32 bits.
    """
    for name in ("payload_length", "model_length", "payload_crc", "arena_size", "label_count",
                 "board_id"):
        value = getattr(header, name)
        if not 0 <= value <= U32_MAX:
            raise FlashError(f"image header {name} (={value}) must be in [0...{U32_MAX}]")
    if not 0 <= header.version <= 0xFFFF:
        raise FlashError(f"image header version (={header.version}) must be in [0...65535]")
    body = _FIELDS.pack(MAGIC, header.version, HEADER_SIZE, header.payload_length,
                        header.model_length, header.payload_crc, header.arena_size,
                        header.label_count, header.board_id)
    return body + _CRC.pack(zlib.crc32(body))


def unpack_header(data: bytes) -> ImageHeader:
    """Decode and check the first 64 bytes of an image (magic, version, size, header CRC).

    Raises:
        FlashError: the bytes are not a header this version of edge understands.
    """
    if len(data) < HEADER_SIZE:
        raise FlashError(f"model image truncated: {len(data)} bytes, the header alone is "
                         f"{HEADER_SIZE}")
    body = bytes(data[: _FIELDS.size])
    magic, version, size, payload_len, model_len, crc, arena, labels, board = _FIELDS.unpack(body)
    if magic != MAGIC:
        raise FlashError(f"not a model image: magic is {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise FlashError(f"model image format version {version} is not supported "
                         f"(this edge writes and reads version {FORMAT_VERSION})")
    if size != HEADER_SIZE:
        raise FlashError(f"model image header size {size} must be {HEADER_SIZE}")
    (stored,) = _CRC.unpack_from(data, _FIELDS.size)
    if stored != zlib.crc32(body):
        raise FlashError(f"model image header CRC mismatch: stored {stored:#010x}, computed "
                         f"{zlib.crc32(body):#010x}")
    return ImageHeader(payload_length=payload_len, model_length=model_len, payload_crc=crc,
                       arena_size=arena, label_count=labels, board_id=board, version=version)


def check_model(model: bytes, source: str = "model") -> None:
    """The minimal structural check of the model bytes inside an image (size, identifier).

    The codec's own sanity check: edge-flash has already passed the model through
    ``edge.model.read_model`` and edge-export's exportability check before building an image.

    Raises:
        ModelError: too small to be a flatbuffer, or no "TFL3" identifier at bytes 4..8.
    """
    if len(model) < MIN_MODEL_SIZE:
        raise ModelError(f"{source}: {len(model)} bytes is too small to be a .tflite model")
    if model[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{source}: not a .tflite model (bytes 4..8 are {bytes(model[4:8])!r}, "
                         f"expected {TFLITE_IDENTIFIER!r})")


def encode_labels(labels: tuple[str, ...] | list[str]) -> bytes:
    """Labels as UTF-8, one per line, each ending in a newline.

    Raises:
        LabelError: a label contains a line break or a NUL byte.
    """
    for index, label in enumerate(labels):
        if any(c in label for c in "\r\n\0"):
            raise LabelError(f"label {index} ({label!r}) must not contain line breaks or NUL")
    return "".join(f"{label}\n" for label in labels).encode("utf-8")


def decode_labels(data: bytes, count: int) -> tuple[str, ...]:
    """Inverse of :func:`encode_labels`, checking that there are exactly ``count`` labels.

    Raises:
        FlashError: the labels section is not ``count`` newline-terminated UTF-8 lines.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FlashError(f"model image labels are not UTF-8: {e}") from e
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) - 1 != count:
        raise FlashError(f"model image labels: header says {count}, section holds "
                         f"{text.count(chr(10))} newline-terminated lines")
    return tuple(lines[:-1])


def build_image(model: bytes, labels: tuple[str, ...] | list[str], arena_size: int,
                board: str) -> bytes:
    """Header + model + labels, ready for the board's model slot.

    Args:
        model: the .tflite file's bytes.
        labels: class names, index = class id (may be empty).
        arena_size: bytes of tensor arena the model needs (from edge-export's plan).
        board: the board name; the firmware refuses images made for another board.

    Raises:
        ModelError: the model is not a .tflite file.
        LabelError: a label contains a line break.
        FlashError: a size does not fit the header.
    """
    check_model(model)
    label_bytes = encode_labels(labels)
    payload = bytes(model) + label_bytes
    header = ImageHeader(payload_length=len(payload), model_length=len(model),
                         payload_crc=zlib.crc32(payload), arena_size=arena_size,
                         label_count=len(labels), board_id=board_id(board))
    return pack_header(header) + payload


def parse_image(data: bytes, board: str | None = None) -> ModelImage:
    """Decode and check an image, as the firmware would (and optionally its board).

    Trailing bytes after the payload (erased flash, UF2 padding) are ignored.

    Raises:
        FlashError: any check fails; the message names which.
        ModelError: the payload's model lacks the .tflite identifier.
    """
    header = unpack_header(data)
    if board is not None and header.board_id != board_id(board):
        raise FlashError(f"model image was made for another board (id {header.board_id:#010x}, "
                         f"{board} is {board_id(board):#010x})")
    end = HEADER_SIZE + header.payload_length
    if len(data) < end:
        raise FlashError(f"model image truncated: header says {end} bytes, got {len(data)}")
    if header.model_length > header.payload_length:
        raise FlashError(f"model image model length {header.model_length} exceeds its payload "
                         f"length {header.payload_length}")
    payload = bytes(data[HEADER_SIZE:end])
    if zlib.crc32(payload) != header.payload_crc:
        raise FlashError(f"model image payload CRC mismatch: stored {header.payload_crc:#010x}, "
                         f"computed {zlib.crc32(payload):#010x}")
    model = payload[: header.model_length]
    check_model(model, "model image")
    labels = decode_labels(payload[header.model_length:], header.label_count)
    return ModelImage(header=header, model=model, labels=labels)
