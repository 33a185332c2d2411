"""Consistent Overhead Byte Stuffing for payloads of at most 254 bytes.

COBS removes every 0x00 from a payload so that 0x00 can delimit frames on the wire. Each code
byte ``c`` is followed by ``c - 1`` payload bytes and stands for a 0x00 after them, except when
``c == 0xFF`` or when the block ends the frame. Because the label protocol caps payloads at 254
bytes, an encoded frame is always exactly one byte longer than its payload.
"""

from __future__ import annotations

MAX_PAYLOAD = 254


def cobs_encode(payload: bytes) -> bytes:
    """Stuff ``payload`` (at most 254 bytes) into ``len(payload) + 1`` bytes free of 0x00.

    Raises:
        ValueError: the payload is longer than 254 bytes.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"COBS payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    out = bytearray()
    for block in payload.split(b"\x00"):
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(frame: bytes) -> bytes | None:
    """The payload stuffed in ``frame`` (without its 0x00 delimiter), or None if malformed."""
    if b"\x00" in frame:
        return None
    out = bytearray()
    i = 0
    n = len(frame)
    while i < n:
        code = frame[i]
        end = i + code
        if end > n:
            return None
        out += frame[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
