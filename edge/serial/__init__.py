"""Serial label streaming: one wire protocol (text JSON lines or COBS binary with CRC-32).

The codec in :mod:`edge.serial.protocol` is pure (bytes in, records out). Opening ports lives in
:mod:`edge.serial.link` and the reconnecting read loop in :mod:`edge.serial.listen`; importing
this package imports neither pyserial nor anything else hardware-related.
"""

from edge.serial.protocol import (
    STREAM_START,
    DecoderStats,
    LabelRecord,
    StreamDecoder,
    encode_binary,
    encode_text,
)

__all__ = ["STREAM_START", "DecoderStats", "LabelRecord", "StreamDecoder", "encode_binary",
           "encode_text"]
