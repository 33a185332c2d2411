"""Writing .tflite models: the flatbuffer object API in, the file's bytes out.

A rewrite (the patch-based tiling in :mod:`firmware_export.patch.rewrite`) works on the schema's
object form (:class:`ModelT`, generated with ``--gen-object-api`` into
:mod:`edge.model.schema_generated`): :func:`unpack_model` turns checked bytes into it and
:func:`pack_model` serialises it again. Constant buffers are written aligned to
:data:`BUFFER_ALIGNMENT` bytes like the TFLite converter does (TFLM reads int32 biases and
per-channel data in place, so they must stay aligned); everything else is the generated packer.
Only validated models are unpacked: callers read the bytes with :func:`edge.model.read_model`
first.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np

from edge.errors import ModelError
from edge.model import schema_generated as fb

BUFFER_ALIGNMENT = 16
IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = 2**31 - 1

ModelT = fb.ModelT
SubGraphT = fb.SubGraphT
TensorT = fb.TensorT
OperatorT = fb.OperatorT
OperatorCodeT = fb.OperatorCodeT
BufferT = fb.BufferT
QuantizationParametersT = fb.QuantizationParametersT


class _AlignedBufferT(fb.BufferT):  # type: ignore[misc]
    """A buffer whose data vector starts on a :data:`BUFFER_ALIGNMENT` boundary."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - the generated API's name
        data = None
        if self.data is not None and len(self.data) > 0:
            array = np.ascontiguousarray(np.asarray(self.data, dtype=np.uint8))
            builder.StartVector(1, len(array), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(array)
            builder.Bytes[builder.head:builder.head + len(array)] = array.tobytes()
            builder.vectorNumElems = len(array)
            data = builder.EndVector()
        fb.BufferStart(builder)
        if data is not None:
            fb.BufferAddData(builder, data)
        fb.BufferAddOffset(builder, self.offset)
        fb.BufferAddSize(builder, self.size)
        return int(fb.BufferEnd(builder))


def unpack_model(content: bytes) -> Any:
    """The object form (``ModelT``) of a model's bytes (already validated by the reader).

    Raises:
        ModelError: the model keeps its weights outside the flatbuffer (buffer offsets), which
            the writer does not carry over.
    """
    model = fb.ModelT.InitFromPackedBuf(bytearray(content), 0)
    for buffer in model.buffers or []:
        if buffer.offset:
            raise ModelError("the model stores its weights after the flatbuffer (buffer "
                             "offsets, a model over 2 GB); it cannot be rewritten")
    return model


def pack_model(model: Any) -> bytes:
    """Serialise a ``ModelT`` into a .tflite file's bytes (identifier ``TFL3``).

    Raises:
        ModelError: the result would exceed flatbuffers' 2 GB limit.
    """
    model.buffers = [_aligned(b) for b in model.buffers or []]
    size = sum(len(b.data) for b in model.buffers if b.data is not None)
    if size > MAX_MODEL_BYTES:
        raise ModelError(f"the rewritten model's constants take {size} B, over flatbuffers' "
                         "2 GB limit")
    builder = flatbuffers.Builder(size + 65536)
    root = model.Pack(builder)
    builder.Finish(root, file_identifier=IDENTIFIER)
    return bytes(builder.Output())


def _aligned(buffer: Any) -> Any:
    if isinstance(buffer, _AlignedBufferT):
        return buffer
    copy = _AlignedBufferT()
    copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
    return copy


def opcode_index(model: Any, builtin: int, version: int = 1) -> int:
    """The index of ``builtin`` in the model's operator-code table, added when missing."""
    codes = model.operatorCodes
    for i, code in enumerate(codes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and not code.customCode:
            code.version = max(code.version, version)
            return i
    code = fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = version
    codes.append(code)
    return len(codes) - 1


def add_buffer(model: Any, data: bytes | None = None) -> int:
    """Append a buffer (empty for activations) and return its index."""
    buffer = _AlignedBufferT()
    if data:
        buffer.data = np.frombuffer(data, dtype=np.uint8).copy()  # type: ignore[assignment]
    model.buffers.append(buffer)
    return len(model.buffers) - 1
