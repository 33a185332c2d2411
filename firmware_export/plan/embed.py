"""Writing metadata into a .tflite: re-serialised through :mod:`edge.model.writer`.

Constant buffers are re-laid with 16-byte alignment by the writer's one packer (the generated
code aligns byte vectors to 1, which would leave int32 biases and our int32 metadata words
unaligned on a microcontroller). Bytes appended after the flatbuffer (labels zip files) are not
carried over.
"""

from __future__ import annotations

from typing import Any

from edge.model import schema_generated as schema
from edge.model.writer import add_buffer, pack_model, unpack_model


def with_metadata(content: bytes, name: str, payload: bytes) -> bytes:
    """``content`` with metadata ``name`` set to ``payload`` (replacing an entry of that name).

    Raises:
        ModelError: the model keeps its weights after the flatbuffer (see
            :func:`edge.model.writer.unpack_model`).
    """
    model = unpack_model(content)
    model.buffers = model.buffers or []
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != name]
    meta = schema.MetadataT()
    meta.name = name
    meta.buffer = add_buffer(model, payload)
    model.metadata.append(meta)
    return pack_model(model)


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
