"""The plain data a model is read into: tensors, operators, subgraphs and the model itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# TensorType enum value -> (name, numpy dtype or None when it has no fixed-size numpy form).
TENSOR_TYPES: dict[int, tuple[str, Any]] = {
    0: ("float32", np.float32),
    1: ("float16", np.float16),
    2: ("int32", np.int32),
    3: ("uint8", np.uint8),
    4: ("int64", np.int64),
    5: ("string", None),
    6: ("bool", np.bool_),
    7: ("int16", np.int16),
    8: ("complex64", np.complex64),
    9: ("int8", np.int8),
    10: ("float64", np.float64),
    11: ("complex128", np.complex128),
    12: ("uint64", np.uint64),
    13: ("resource", None),
    14: ("variant", None),
    15: ("uint32", np.uint32),
    16: ("uint16", np.uint16),
    17: ("int4", None),
    18: ("bfloat16", None),
}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per ``axis``."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    @property
    def symmetric(self) -> bool:
        return not np.any(self.zero_point)

    def to_dict(self) -> dict[str, Any]:
        if self.per_channel:
            return {"per_channel": True, "axis": self.axis, "channels": len(self.scale),
                    "symmetric": self.symmetric}
        return {"scale": float(self.scale[0]), "zero_point": int(self.zero_point[0])}


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph. ``data`` holds a constant's bytes (no copy), else None."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    quantization: Quantization | None
    is_variable: bool
    data: memoryview | None = field(repr=False, compare=False)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        np_type = dtype_of(self.dtype)
        if np_type is not None:
            return int(np.dtype(np_type).itemsize)
        return {"int4": 1, "bfloat16": 2}.get(self.dtype, 0)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies when materialised (what an interpreter allocates)."""
        if self.dtype == "int4" and self.data is None:
            return (self.size + 1) // 2
        return self.size * self.itemsize

    def array(self) -> np.ndarray:
        """The constant's values as a numpy array (read-only view)."""
        np_type = dtype_of(self.dtype)
        if self.data is None or np_type is None:
            raise ValueError(f"tensor {self.name!r} has no constant data of a numpy type")
        return np.frombuffer(self.data, dtype=np_type).reshape(self.shape)


@dataclass(frozen=True)
class Operator:
    """One node: ``opcode`` is the builtin name (``CONV_2D``) or the custom code."""

    index: int
    opcode: str
    custom: bool
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]
    intermediates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Subgraph:
    name: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class MicroSupport:
    """Whether TFLite Micro can run the model, and if not, why."""

    runnable: bool
    reason: str


@dataclass(frozen=True)
class Model:
    """A validated .tflite model. Everything in it has been bounds-checked."""

    source: str
    content: bytes = field(repr=False, compare=False)
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    metadata: dict[str, bytes] = field(repr=False)
    labels: tuple[str, ...] | None
    flatbuffer_size: int

    @property
    def main(self) -> Subgraph:
        """The first subgraph, the one interpreters run."""
        return self.subgraphs[0]

    @property
    def opcodes(self) -> list[str]:
        """Distinct operator names in the order they first appear."""
        seen: dict[str, None] = {}
        for graph in self.subgraphs:
            for op in graph.operators:
                seen.setdefault(op.opcode, None)
        return list(seen)

    @property
    def custom_ops(self) -> list[str]:
        return sorted({op.opcode for g in self.subgraphs for op in g.operators if op.custom})

    @property
    def edgetpu_compiled(self) -> bool:
        """Compiled by edgetpu_compiler: it contains ``edgetpu-custom-op``."""
        return "edgetpu-custom-op" in self.custom_ops

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.main.tensors[i] for i in self.main.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.main.tensors[i] for i in self.main.outputs]


_NUMPY_TYPES: dict[str, Any] = dict(TENSOR_TYPES.values())


def dtype_of(name: str) -> Any:
    """numpy dtype for a TFLite type name, or None."""
    return _NUMPY_TYPES.get(name)
