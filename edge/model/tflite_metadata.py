"""The parts of TFLite metadata (the ``TFLITE_METADATA`` buffer that Model Maker, MediaPipe and
TF Hub models carry, schema ``metadata_schema.fbs``) that say what a model's outputs are.

Read defensively with flatbuffers' generic table access: a damaged or hostile buffer means
"no metadata", never an error. Fields read: ``ModelMetadata.name`` (0) and
``subgraph_metadata`` (3); ``SubGraphMetadata.output_tensor_metadata`` (3);
``TensorMetadata.name`` (0) and ``description`` (1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from flatbuffers import encode, number_types, table

METADATA_KEY = "TFLITE_METADATA"
MAX_ITEMS = 64


@dataclass(frozen=True)
class TensorNote:
    """What the metadata says about one tensor."""

    name: str
    description: str


@dataclass(frozen=True)
class ModelNotes:
    """The model's name and its outputs' notes, in the output order."""

    name: str
    outputs: tuple[TensorNote, ...]


def read_notes(metadata: dict[str, bytes]) -> ModelNotes | None:
    """The notes of a model's ``TFLITE_METADATA`` buffer, or None when absent or unreadable."""
    data = metadata.get(METADATA_KEY)
    if not data or len(data) < 8:
        return None
    try:
        root = table.Table(bytearray(data), encode.Get(number_types.UOffsetTFlags.packer_type,
                                                       data, 0))
        graphs = _tables(root, 3)
        outputs = _tables(graphs[0], 3) if graphs else []
        notes = tuple(TensorNote(_string(t, 0), _string(t, 1)) for t in outputs)
        return ModelNotes(_string(root, 0), notes)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError, TypeError):
        return None


def _tables(parent: table.Table, slot: int) -> list[table.Table]:
    offset = parent.Offset(4 + 2 * slot)
    if not offset:
        return []
    start = parent.Vector(offset)
    count = min(parent.VectorLen(offset), MAX_ITEMS)
    return [table.Table(parent.Bytes, parent.Indirect(start + 4 * i)) for i in range(count)]


def _string(tab: table.Table, slot: int) -> str:
    offset = tab.Offset(4 + 2 * slot)
    if not offset:
        return ""
    raw = tab.String(offset + tab.Pos)
    if len(raw) > 4096:
        raise ValueError("string too long")
    return bytes(raw).decode("utf-8")
