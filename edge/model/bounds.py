"""A bounds check for the parts of the TFLite flatbuffer that edge reads.

The generated schema binding (:mod:`edge.model.schema_generated`) trusts its input: a negative
soffset makes it read from the end of the buffer, a huge vector length makes it loop for hours.
This module walks every table, vector and string the reader will touch and checks each offset and
length against the buffer first, the way flatbuffers' C++ ``Verifier`` does, so that the binding
only ever sees bytes that are known to be in range. Anything wrong becomes a :class:`ModelError`
that names the field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edge.errors import ModelError

# Field kinds: a scalar of N bytes, a string, a vector of N-byte scalars, a table or a vector of
# tables of a named type, or a union's table (verified as a table of scalars).
Scalar = tuple[str, int]
FieldSpec = tuple[str, int | str]

SCHEMA: dict[str, dict[int, tuple[str, FieldSpec]]] = {
    "Model": {
        0: ("version", ("scalar", 4)),
        1: ("operator_codes", ("tables", "OperatorCode")),
        2: ("subgraphs", ("tables", "SubGraph")),
        3: ("description", ("string", 0)),
        4: ("buffers", ("tables", "Buffer")),
        5: ("metadata_buffer", ("vector", 4)),
        6: ("metadata", ("tables", "Metadata")),
    },
    "OperatorCode": {
        0: ("deprecated_builtin_code", ("scalar", 1)),
        1: ("custom_code", ("string", 0)),
        2: ("version", ("scalar", 4)),
        3: ("builtin_code", ("scalar", 4)),
    },
    "SubGraph": {
        0: ("tensors", ("tables", "Tensor")),
        1: ("inputs", ("vector", 4)),
        2: ("outputs", ("vector", 4)),
        3: ("operators", ("tables", "Operator")),
        4: ("name", ("string", 0)),
    },
    "Tensor": {
        0: ("shape", ("vector", 4)),
        1: ("type", ("scalar", 1)),
        2: ("buffer", ("scalar", 4)),
        3: ("name", ("string", 0)),
        4: ("quantization", ("table", "QuantizationParameters")),
        5: ("is_variable", ("scalar", 1)),
        6: ("sparsity", ("opaque", 0)),
        7: ("shape_signature", ("vector", 4)),
    },
    "QuantizationParameters": {
        0: ("min", ("vector", 4)),
        1: ("max", ("vector", 4)),
        2: ("scale", ("vector", 4)),
        3: ("zero_point", ("vector", 8)),
        4: ("details_type", ("scalar", 1)),
        6: ("quantized_dimension", ("scalar", 4)),
    },
    "Operator": {
        0: ("opcode_index", ("scalar", 4)),
        1: ("inputs", ("vector", 4)),
        2: ("outputs", ("vector", 4)),
        3: ("builtin_options_type", ("scalar", 1)),
        4: ("builtin_options", ("opaque", 0)),
        5: ("custom_options", ("vector", 1)),
        8: ("intermediates", ("vector", 4)),
    },
    "Buffer": {
        0: ("data", ("vector", 1)),
        1: ("offset", ("scalar", 8)),
        2: ("size", ("scalar", 8)),
    },
    "Metadata": {
        0: ("name", ("string", 0)),
        1: ("buffer", ("scalar", 4)),
    },
}

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
MAX_DEPTH = 8


@dataclass
class BoundsChecker:
    """Checks a flatbuffer against :data:`SCHEMA`; counts tables to bound the work."""

    buf: bytes | memoryview
    tables_seen: int = 0

    def fail(self, where: str, what: str) -> ModelError:
        return ModelError(f"corrupt model: {where}: {what}")

    def check_range(self, where: str, pos: int, size: int) -> None:
        if pos < 0 or size < 0 or pos + size > len(self.buf):
            raise self.fail(where, f"bytes {pos}..{pos + size} lie outside the file "
                                   f"({len(self.buf)} bytes)")

    def u16(self, where: str, pos: int) -> int:
        self.check_range(where, pos, 2)
        return int(_U16.unpack_from(self.buf, pos)[0])

    def u32(self, where: str, pos: int) -> int:
        self.check_range(where, pos, 4)
        return int(_U32.unpack_from(self.buf, pos)[0])

    def deref(self, where: str, pos: int) -> int:
        """Follow the uoffset stored at ``pos``."""
        target = pos + self.u32(where, pos)
        self.check_range(where, target, 4)
        return target

    def table_fields(self, where: str, pos: int) -> tuple[int, list[int]]:
        """Check a table's header and vtable; return its inline size and field offsets."""
        self.tables_seen += 1
        if self.tables_seen > len(self.buf) // 4 + 1:
            raise self.fail(where, "more tables than the file can hold (offset loop)")
        if pos % 4:
            raise self.fail(where, f"table at {pos} is not 4-byte aligned")
        self.check_range(where, pos, 4)
        vtable = pos - int(_I32.unpack_from(self.buf, pos)[0])
        vt_size = self.u16(f"{where} vtable", vtable)
        table_size = self.u16(f"{where} vtable", vtable + 2)
        if vt_size < 4 or vt_size % 2:
            raise self.fail(where, f"vtable size {vt_size} is invalid")
        self.check_range(f"{where} vtable", vtable, vt_size)
        if table_size < 4:
            raise self.fail(where, f"table size {table_size} is invalid")
        self.check_range(where, pos, table_size)
        offsets = [self.u16(where, vtable + 4 + 2 * i) for i in range((vt_size - 4) // 2)]
        if any(off >= table_size for off in offsets):
            raise self.fail(where, "a field lies outside its table")
        return table_size, offsets

    def vector(self, where: str, pos: int, elem_size: int) -> int:
        """Check a vector at ``pos``; return its length."""
        length = self.u32(where, pos)
        self.check_range(where, pos + 4, length * elem_size)
        return length

    def table(self, type_name: str, pos: int, where: str, depth: int = 0) -> None:
        """Verify the table of ``type_name`` at ``pos`` and everything below it."""
        if depth > MAX_DEPTH:
            raise self.fail(where, "tables nested too deeply")
        size, offsets = self.table_fields(where, pos)
        for slot, (name, (kind, arg)) in SCHEMA[type_name].items():
            off = offsets[slot] if slot < len(offsets) else 0
            if not off:
                continue
            field_where = f"{where}.{name}"
            width = int(arg) if kind == "scalar" else 4
            if off + width > size:
                raise self.fail(field_where, f"field at offset {off} overruns its table")
            self.field(kind, arg, pos + off, field_where, depth)

    def field(self, kind: str, arg: int | str, at: int, where: str, depth: int) -> None:
        if kind == "scalar":
            return
        target = self.deref(where, at)
        if kind == "string":
            length = self.vector(where, target, 1)
            self.check_range(where, target + 4 + length, 1)
            if self.buf[target + 4 + length] != 0:
                raise self.fail(where, "string is not terminated")
        elif kind == "vector":
            self.vector(where, target, int(arg))
        elif kind == "table":
            self.table(str(arg), target, where, depth + 1)
        elif kind == "tables":
            for i in range(self.vector(where, target, 4)):
                elem = target + 4 + 4 * i
                self.table(str(arg), self.deref(f"{where}[{i}]", elem), f"{where}[{i}]",
                           depth + 1)
        elif kind == "opaque":
            self.table_fields(where, target)


def check_model_bounds(buf: bytes | memoryview) -> int:
    """Bounds-check the whole model flatbuffer; return the root table's position.

    Raises:
        ModelError: the first out-of-range offset or length, naming the field.
    """
    checker = BoundsChecker(buf)
    root = checker.deref("root", 0)
    checker.table("Model", root, "model")
    return root


def check_scalar_table_bounds(buf: bytes | memoryview, pos: int, where: str
                              ) -> tuple[int, list[int]]:
    """Check the header of a table whose fields are read as scalars (operator options)."""
    return BoundsChecker(buf).table_fields(where, pos)
