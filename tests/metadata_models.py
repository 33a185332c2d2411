"""A TFLite metadata buffer (``metadata_schema.fbs``'s ModelMetadata) written into a model, as
the TFLite metadata writer does, for the tests of what edge reads from it."""

from __future__ import annotations

import flatbuffers

from edge.model import schema_generated as schema


def metadata_buffer(model_name: str, outputs: list[tuple[str, str]]) -> bytes:
    """ModelMetadata{name, subgraph_metadata: [{output_tensor_metadata: [{name, description}]}]}."""
    builder = flatbuffers.Builder(256)
    tensors = []
    for name, description in outputs:
        n, d = builder.CreateString(name), builder.CreateString(description)
        builder.StartObject(2)
        builder.PrependUOffsetTRelativeSlot(0, n, 0)
        builder.PrependUOffsetTRelativeSlot(1, d, 0)
        tensors.append(builder.EndObject())
    builder.StartVector(4, len(tensors), 4)
    for t in reversed(tensors):
        builder.PrependUOffsetTRelative(t)
    vector = builder.EndVector()
    builder.StartObject(4)
    builder.PrependUOffsetTRelativeSlot(3, vector, 0)
    graph = builder.EndObject()
    builder.StartVector(4, 1, 4)
    builder.PrependUOffsetTRelative(graph)
    graphs = builder.EndVector()
    name = builder.CreateString(model_name)
    builder.StartObject(8)
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.PrependUOffsetTRelativeSlot(3, graphs, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"M001")
    return bytes(builder.Output())


def with_metadata(content: bytes, data: bytes, key: str = "TFLITE_METADATA") -> bytes:
    """``content`` with one more metadata entry ``key`` pointing at a new buffer of ``data``."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    buffer = schema.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = key
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(content) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
