"""Writing metadata into a .tflite: re-serialise it with the schema's object API.

Constant buffers are re-laid with 16-byte alignment (the generated code aligns byte vectors to 1,
which would leave int32 biases and our int32 metadata words unaligned on a microcontroller).
Bytes appended after the flatbuffer (labels zip files) are not carried over.
"""

from __future__ import annotations

from typing import Any

import flatbuffers

from edge.model import schema_generated as schema

FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16


class _AlignedBuffer(schema.BufferT):
    def Pack(self, builder: Any) -> int:  # noqa: N802 - the generated API's name
        data = None
        if self.data is not None and len(self.data):
            raw = bytes(bytearray(self.data))
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return int(schema.BufferEnd(builder))


def with_metadata(content: bytes, name: str, payload: bytes) -> bytes:
    """``content`` with metadata ``name`` set to ``payload`` (replacing an entry of that name)."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    model.buffers = model.buffers or []
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != name]
    entry = schema.BufferT()
    entry.data = list(payload)
    model.buffers.append(entry)
    meta = schema.MetadataT()
    meta.name = name
    meta.buffer = len(model.buffers) - 1
    model.metadata.append(meta)
    for buffer in model.buffers:
        buffer.__class__ = _AlignedBuffer
    builder = flatbuffers.Builder(len(content) + len(payload) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
