"""Read a .tflite file into validated plain data (:class:`edge.model.types.Model`).

Order of work: the flatbuffer is bounds-checked (every offset and length, :mod:`edge.model.bounds`),
then read through edge's own schema binding (:mod:`edge.model.schema`), then checked for meaning:
tensor, buffer and opcode indices in range, shapes sane, constant data the size its shape says,
quantization vectors consistent, operators in an order that produces each tensor before use;
then checked for meaning per operator and quantized tensor (:mod:`edge.model.semantics`).
Malformed input of any kind ends in :class:`ModelError` naming the field; nothing unvalidated
reaches native code.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from edge.bounded_read import read_bounded
from edge.errors import ModelError
from edge.model import labels as labels_mod
from edge.model import schema
from edge.model.bounds import check_model_bounds, check_scalar_table_bounds
from edge.model.semantics import check_semantics
from edge.model.types import TENSOR_TYPES, Model, Operator, Quantization, Subgraph, Tensor

MAX_MODEL_BYTES = 2**31 - 1  # flatbuffers' own limit; larger models keep weights outside it
MAX_RANK = 8
MAX_TENSOR_BYTES = 2**31 - 1
IDENTIFIER = b"TFL3"


def read_model(source: str | Path | bytes | bytearray | memoryview, name: str | None = None
               ) -> Model:
    """Read and validate a TFLite model from a path or from bytes.

    Args:
        source: a path to a ``.tflite`` file, or the file's bytes.
        name: what to call the model in messages when ``source`` is bytes.

    Raises:
        ModelError: the file is missing, unreadable, not a TFLite model, or malformed; the
            message names the file and the bad field.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_model(bytes(source), name or "<bytes>")
    path = Path(source)
    return parse_model(load_bytes(path), str(path))


def load_bytes(path: Path) -> bytes:
    """The bytes of a model file, with one clear error for each way it can fail.

    Only regular files are read (never a FIFO or a device), and never more than
    :data:`MAX_MODEL_BYTES`, counted as they are read.
    """
    return read_bounded(path, MAX_MODEL_BYTES, error=ModelError, what="model")


def parse_model(content: bytes, source: str) -> Model:
    """Validate and read model bytes; ``source`` names them in messages."""
    if len(content) < 8:
        raise ModelError(f"{source}: {len(content)} bytes is too short to be a TFLite model "
                         "(empty or truncated file)")
    if content[4:8] != IDENTIFIER and content[:4] == b"PK\x03\x04" \
            and source.endswith(".keras"):
        raise ModelError(f"{source}: a Keras model, not a TFLite model; run `edge-model "
                         f"quantize {source}` and give the .tflite it writes")
    if content[4:8] != IDENTIFIER:
        raise ModelError(f"{source}: not a TFLite model (no '{IDENTIFIER.decode()}' identifier "
                         f"at byte 4; found {content[4:8]!r}); give a .tflite flatbuffer")
    try:
        root = check_model_bounds(content)
        model = _ModelBuilder(content, source).build(root)
        check_semantics(model.subgraphs)
        return model
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None
    except (struct.error, IndexError, ValueError, OverflowError, UnicodeDecodeError) as e:
        # The bounds check makes these unreachable for fields it checks; keep the promise anyway.
        raise ModelError(f"{source}: corrupt model: {e}") from e


class _ModelBuilder:
    """Reads a bounds-checked flatbuffer into plain data and checks its meaning."""

    def __init__(self, content: bytes, source: str) -> None:
        self.content = content
        self.view = memoryview(content)
        self.source = source
        self.flatbuffer_end = 0

    def build(self, root: int) -> Model:
        fb = schema.Model()
        fb.Init(self.content, root)
        buffers = [self._buffer(fb.Buffers(i), i) for i in range(fb.BuffersLength())]
        opcodes = [self._opcode(fb.OperatorCodes(i), i) for i in range(fb.OperatorCodesLength())]
        if fb.SubgraphsLength() == 0:
            raise ModelError("corrupt model: it has no subgraphs")
        graphs = tuple(self._subgraph(fb.Subgraphs(i), i, buffers, opcodes)
                       for i in range(fb.SubgraphsLength()))
        metadata = self._metadata(fb, buffers)
        return Model(
            source=self.source,
            content=self.content,
            version=fb.Version(),
            description=_text(fb.Description()),
            subgraphs=graphs,
            metadata=metadata,
            labels=labels_mod.embedded_labels(self.content),
            flatbuffer_size=self.flatbuffer_end,
        )

    def _buffer(self, fb: Any, index: int) -> memoryview | None:
        offset, size = fb.Offset(), fb.Size()
        if offset > 1:
            if offset + size > len(self.content):
                raise ModelError(f"corrupt model: buffers[{index}] points at bytes {offset}.."
                                 f"{offset + size} beyond the end of the file")
            return self.view[offset:offset + size]
        if fb.DataIsNone() or fb.DataLength() == 0:
            return None
        start = fb._tab.Vector(fb._tab.Offset(4))
        end = start + fb.DataLength()
        self.flatbuffer_end = max(self.flatbuffer_end, end)
        return self.view[start:end]

    def _opcode(self, fb: Any, index: int) -> tuple[str, bool, int]:
        custom = fb.CustomCode()
        code = max(fb.BuiltinCode(), fb.DeprecatedBuiltinCode())
        if custom is not None and code == schema.BuiltinOperator.CUSTOM:
            return _text(custom), True, fb.Version()
        if code not in schema.BUILTIN_NAMES:
            raise ModelError(f"corrupt model: operator_codes[{index}] has unknown builtin code "
                             f"{code} (newer TFLite schema?)")
        return schema.BUILTIN_NAMES[code], False, fb.Version()

    def _subgraph(self, fb: Any, g: int, buffers: list[memoryview | None],
                  opcodes: list[tuple[str, bool, int]]) -> Subgraph:
        where = f"subgraphs[{g}]"
        tensors = tuple(self._tensor(fb.Tensors(i), i, f"{where}.tensors[{i}]", buffers)
                        for i in range(fb.TensorsLength()))
        n = len(tensors)
        inputs = _indices(fb.InputsAsNumpy(), n, f"{where}.inputs", allow_optional=False)
        outputs = _indices(fb.OutputsAsNumpy(), n, f"{where}.outputs", allow_optional=False)
        ops = tuple(self._operator(fb.Operators(i), i, f"{where}.operators[{i}]", n, opcodes)
                    for i in range(fb.OperatorsLength()))
        graph = Subgraph(_text(fb.Name()), tensors, ops, inputs, outputs)
        _check_order(graph, where)
        return graph

    def _tensor(self, fb: Any, index: int, where: str, buffers: list[memoryview | None]
                ) -> Tensor:
        shape = tuple(int(d) for d in _numpy_or_empty(fb.ShapeAsNumpy()))
        if len(shape) > MAX_RANK:
            raise ModelError(f"corrupt model: {where}.shape has rank {len(shape)} (max {MAX_RANK})")
        if any(d < 0 for d in shape):
            raise ModelError(f"corrupt model: {where}.shape {list(shape)} has a negative dimension")
        type_code = fb.Type()
        if type_code not in TENSOR_TYPES:
            raise ModelError(f"corrupt model: {where}.type {type_code} is not a TFLite type")
        dtype = TENSOR_TYPES[type_code][0]
        buffer_index = fb.Buffer()
        if buffer_index >= max(len(buffers), 1):
            raise ModelError(f"corrupt model: {where}.buffer {buffer_index} is out of range "
                             f"(the model has {len(buffers)} buffers)")
        data = buffers[buffer_index] if buffers else None
        tensor = Tensor(index, _text(fb.Name()), shape, dtype, buffer_index,
                        self._quantization(fb.Quantization(), where, shape),
                        bool(fb.IsVariable()), data)
        if tensor.size * max(tensor.itemsize, 1) > MAX_TENSOR_BYTES:
            raise ModelError(f"corrupt model: {where}.shape {list(shape)} is absurdly large")
        expected = tensor.nbytes
        if data is not None and dtype not in ("string", "resource", "variant") \
                and len(data) != expected and not (dtype == "int4" and len(data) * 2 >= expected):
            raise ModelError(f"corrupt model: {where} ({tensor.name!r}) has {len(data)} bytes of "
                             f"data but shape {list(shape)} of {dtype} needs {expected}")
        return tensor

    def _quantization(self, fb: Any, where: str, shape: tuple[int, ...]) -> Quantization | None:
        if fb is None or fb.ScaleIsNone() or fb.ScaleLength() == 0:
            return None
        scale = np.array(fb.ScaleAsNumpy(), dtype=np.float32)
        zero_point = (np.zeros(len(scale), dtype=np.int64) if fb.ZeroPointIsNone()
                      else np.array(fb.ZeroPointAsNumpy(), dtype=np.int64))
        axis = fb.QuantizedDimension()
        if len(zero_point) != len(scale):
            raise ModelError(f"corrupt model: {where}.quantization has {len(scale)} scales but "
                             f"{len(zero_point)} zero points")
        if len(scale) > 1:
            # TFLM tolerates an out-of-range axis when the count matches a dimension (its own
            # person_detect model has one); LiteRT refuses such models at load time instead.
            fits_axis = 0 <= axis < len(shape) and shape[axis] == len(scale)
            if not fits_axis and len(scale) not in shape:
                raise ModelError(f"corrupt model: {where}.quantization has {len(scale)} scales "
                                 f"for axis {axis} of shape {list(shape)}")
        if not np.all(np.isfinite(scale)):
            raise ModelError(f"corrupt model: {where}.quantization.scale is not finite")
        return Quantization(scale, zero_point, int(axis))

    def _operator(self, fb: Any, index: int, where: str, n_tensors: int,
                  opcodes: list[tuple[str, bool, int]]) -> Operator:
        code_index = fb.OpcodeIndex()
        if code_index >= len(opcodes):
            raise ModelError(f"corrupt model: {where}.opcode_index {code_index} is out of range "
                             f"(the model has {len(opcodes)} operator codes)")
        name, custom, version = opcodes[code_index]
        return Operator(
            index=index,
            opcode=name,
            custom=custom,
            version=version,
            inputs=_indices(fb.InputsAsNumpy(), n_tensors, f"{where}.inputs"),
            outputs=_indices(fb.OutputsAsNumpy(), n_tensors, f"{where}.outputs",
                             allow_optional=False),
            options=self._options(fb, where),
            intermediates=_indices(fb.IntermediatesAsNumpy(), n_tensors,
                                   f"{where}.intermediates"),
        )

    def _options(self, fb: Any, where: str) -> dict[str, Any]:
        table = fb.BuiltinOptions()
        options_type = fb.BuiltinOptionsType()
        if table is None or options_type == 0:
            return {}
        type_name = schema.OPTIONS_NAMES.get(options_type)
        if type_name is None:
            raise ModelError(f"corrupt model: {where}.builtin_options_type {options_type} is "
                             "not a known options type")
        check_scalar_table_bounds(self.content, table.Pos, f"{where}.builtin_options")
        return schema.read_scalar_options(type_name, self.content, table.Pos)

    def _metadata(self, fb: Any, buffers: list[memoryview | None]) -> dict[str, bytes]:
        metadata: dict[str, bytes] = {}
        for i in range(fb.MetadataLength()):
            entry = fb.Metadata(i)
            index = entry.Buffer()
            if index >= len(buffers):
                raise ModelError(f"corrupt model: metadata[{i}].buffer {index} is out of range")
            data = buffers[index]
            metadata[_text(entry.Name())] = bytes(data) if data is not None else b""
        return metadata


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else ""


def _numpy_or_empty(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.zeros(0, dtype=np.int32)


def _indices(values: Any, n: int, where: str, allow_optional: bool = True) -> tuple[int, ...]:
    arr = _numpy_or_empty(values)
    low = -1 if allow_optional else 0
    bad = arr[(arr < low) | (arr >= n)]
    if len(bad):
        raise ModelError(f"corrupt model: {where} refers to tensor {int(bad[0])}, but the "
                         f"subgraph has {n} tensors")
    return tuple(int(i) for i in arr)


def _check_order(graph: Subgraph, where: str) -> None:
    """Every operator input must exist before the operator runs (topological order)."""
    ready = {t.index for t in graph.tensors if t.is_constant or t.is_variable}
    ready.update(graph.inputs)
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0 and i not in ready:
                raise ModelError(f"corrupt model: {where}.operators[{op.index}] ({op.opcode}) "
                                 f"reads tensor {i} before any operator produces it")
        ready.update(op.outputs)
    missing = [i for i in graph.outputs if i not in ready]
    if missing:
        raise ModelError(f"corrupt model: {where}.outputs: tensor {missing[0]} is never produced")

