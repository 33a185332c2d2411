"""Semantic mutants of real models: well-formed flatbuffers that say something wrong.

Every mutation is an in-place write over a field the model already has (a scale, a zero point,
an input index, an opcode, a stride, a shape dimension, a vector length shrunk), so the
flatbuffer stays valid and the mutant gets past every structural check: only a semantic check
or the interpreter can tell. Sites are found once per model with edge's schema binding; making a
mutant is a copy and a few ``struct.pack_into`` calls, fast enough for thousands.

Used by tests/test_hostile_models.py (a few dozen mutants per command) and
tools/fuzz_models.py (thousands, in forked children).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edge.model import schema_generated as fb

SCALES = (0.0, -1.0, 1e38, 1.1e15, 1e-30, 1e-45, float("inf"), float("nan"), 65504.0, 3e5)
ZERO_POINTS = (200, -200, 128, -129, 256, 1 << 40, -(1 << 62), 40000)
AXES = (-1, 1, 2, 3, 4, 7, 1 << 20)
OPTION_VALUES = (0, -1, -7, 2**31 - 1, 1000, 3)
# Options tables with int fields (BuiltinOptions type -> vtable slots): Conv2D strides and
# dilations, DepthwiseConv2D strides, multiplier and dilations, Pool2D strides and filter,
# Concatenation axis; and SoftmaxOptions.beta, a float.
INT_OPTION_SLOTS = {1: (6, 8, 12, 14), 2: (6, 8, 10, 14, 16), 5: (6, 8, 10, 12), 10: (4,)}
FLOAT_OPTION_SLOTS = {9: (4,)}
BETAS = (0.0, -1.0, 1e38, float("nan"), 1e-30)
DIMS = (0, 3, 8000, 1 << 20, 1 << 30, 64_000)
TYPES = (0, 1, 2, 3, 4, 6, 7, 9, 10, 13, 16, 17)
# Operators the shared models use, and others that read their inputs differently.
OPCODES = (0, 1, 3, 4, 9, 14, 17, 18, 22, 25, 28, 34, 39, 40, 41, 45, 49, 56, 65, 83, 97, 114,
           126, 6, 2, 36, 74, 23, 67, 16, 44, 147)


@dataclass(frozen=True)
class Site:
    """One place a mutation can write: ``fmt`` at byte ``pos``, and what it is."""

    kind: str
    pos: int
    fmt: str
    what: str


@dataclass(frozen=True)
class Mutant:
    content: bytes
    description: str


def _vector(table: Any, slot: int) -> tuple[int, int] | None:
    """(position of the length word, element count) of a vector field, or None."""
    offset = table._tab.Offset(slot)
    if not offset:
        return None
    start = table._tab.Vector(offset)
    return start - 4, table._tab.VectorLen(offset)


def _scalar(table: Any, slot: int) -> int | None:
    offset = table._tab.Offset(slot)
    return table._tab.Pos + offset if offset else None


def _tensor_sites(t: Any, where: str) -> Iterator[Site]:
    shape = _vector(t, 4)
    if shape and shape[1]:
        for d in range(shape[1]):
            yield Site("shape", shape[0] + 4 + 4 * d, "<i", f"{where}.shape[{d}]")
    type_pos = _scalar(t, 6)
    if type_pos is not None:
        yield Site("type", type_pos, "<b", f"{where}.type")
    q = t.Quantization()
    if q is None:
        return
    for slot, kind, fmt, width in ((8, "scale", "<f", 4), (10, "zero_point", "<q", 8)):
        vec = _vector(q, slot)
        if vec:
            for i in range(min(vec[1], 4)):
                yield Site(kind, vec[0] + 4 + width * i, fmt, f"{where}.quantization.{kind}[{i}]")
            yield Site(f"{kind}_count", vec[0], "<I", f"{where}.quantization.{kind} length")
    axis = _scalar(q, 16)
    if axis is not None:
        yield Site("axis", axis, "<i", f"{where}.quantization.quantized_dimension")


def _operator_sites(op: Any, where: str) -> Iterator[Site]:
    for slot, name in ((6, "inputs"), (8, "outputs")):
        vec = _vector(op, slot)
        if vec and vec[1]:
            yield Site(f"{name}_count", vec[0], "<I", f"{where}.{name} length")
            for i in range(vec[1]):
                yield Site(f"{name}_index", vec[0] + 4 + 4 * i, "<i", f"{where}.{name}[{i}]")
    options = op.BuiltinOptions()
    options_type = op.BuiltinOptionsType()
    if options is not None:
        table = fb.Conv2DOptions()  # any table class: only its vtable walk is used
        table.Init(options.Bytes, options.Pos)
        for kind, fmt, slots in (("option", "<i", INT_OPTION_SLOTS.get(options_type, ())),
                                 ("beta", "<f", FLOAT_OPTION_SLOTS.get(options_type, ()))):
            for slot in slots:
                pos = _scalar(table, slot)
                if pos is not None:
                    yield Site(kind, pos, fmt, f"{where}.builtin_options slot {slot}")
    type_pos = _scalar(op, 10)
    if type_pos is not None:
        yield Site("options_type", type_pos, "<B", f"{where}.builtin_options_type")


def mutation_sites(content: bytes) -> list[Site]:
    """Every writable semantic field of the model's main subgraph and operator codes."""
    model = fb.Model.GetRootAs(content, 0)
    sites: list[Site] = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        for slot, fmt in ((4, "<b"), (10, "<i")):
            pos = _scalar(code, slot)
            if pos is not None:
                sites.append(Site("opcode", pos, fmt, f"operator_codes[{i}] slot {slot}"))
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):
        sites.extend(_tensor_sites(graph.Tensors(i), f"tensors[{i}]"))
    for i in range(graph.OperatorsLength()):
        sites.extend(_operator_sites(graph.Operators(i), f"operators[{i}]"))
    return sites


def _value(site: Site, rng: random.Random, content: bytes) -> Any:
    if site.kind == "scale":
        if rng.random() < 0.25:  # flip two bytes of the real scale, as a damaged file does
            raw = bytearray(content[site.pos:site.pos + 4])
            raw[rng.randrange(2, 4)] ^= rng.randrange(1, 256)
            raw[rng.randrange(0, 4)] ^= rng.randrange(1, 256)
            return struct.unpack("<f", bytes(raw))[0]
        return rng.choice(SCALES)
    if site.kind.endswith("_count"):  # shrink a vector: a shorter one stays in bounds
        return rng.randrange(0, max(struct.unpack_from("<I", content, site.pos)[0], 1))
    choices: dict[str, Any] = {
        "zero_point": ZERO_POINTS, "axis": AXES, "beta": BETAS, "option": OPTION_VALUES,
        "shape": DIMS,
        "type": TYPES, "opcode": OPCODES, "inputs_index": (-1, -1, rng.randrange(0, 64)),
        "outputs_index": (rng.randrange(0, 64),), "options_type": (0, 1, 2, 5, 9, 17),
    }
    value = rng.choice(choices[site.kind])
    if site.fmt == "<b":
        value = max(-128, min(127, int(value)))
    elif site.fmt == "<B":
        value = int(value) & 0xFF
    elif site.fmt in ("<i", "<I"):
        value = int(value) & 0xFFFFFFFF if site.fmt == "<I" else int(value)
        value = max(-(2**31), min(2**31 - 1, value)) if site.fmt == "<i" else value
    return value


def mutate(content: bytes, sites: list[Site], rng: random.Random, edits: int = 1) -> Mutant:
    """One mutant: ``edits`` writes at random sites."""
    data = bytearray(content)
    done = []
    for _ in range(edits):
        site = rng.choice(sites)
        value = _value(site, rng, content)
        struct.pack_into(site.fmt, data, site.pos, value)
        done.append(f"{site.what} = {value!r}")
    return Mutant(bytes(data), "; ".join(done))


def representative(content: bytes, count: int, seed: int = 0) -> list[Mutant]:
    """``count`` mutants spread over every kind of site (round robin), reproducible."""
    rng = random.Random(seed)
    by_kind: dict[str, list[Site]] = {}
    for site in mutation_sites(content):
        by_kind.setdefault(site.kind, []).append(site)
    kinds = sorted(by_kind)
    return [mutate(content, by_kind[kinds[i % len(kinds)]], rng) for i in range(count)]


def tiny_model(shape: tuple[int, ...], opcode: int = fb.BuiltinOperator.RELU) -> bytes:
    """A one-operator float32 model ``input -> op -> output`` of the given shape, built here."""
    import flatbuffers

    def tensor(name: str) -> Any:
        t = fb.TensorT()
        t.shape, t.type, t.buffer, t.name = list(shape), fb.TensorType.FLOAT32, 0, name
        return t

    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = [tensor("input"), tensor("output")], [0], [1]
    graph.operators = [op]
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = opcode, min(opcode, 127), 1
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [fb.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_edits(content: bytes, edits: dict[str, Any], sites: dict[str, Site] | None = None
               ) -> bytes:
    """``content`` with the fields named as in :attr:`Site.what` set to the given values."""
    sites = sites or {site.what: site for site in mutation_sites(content)}
    data = bytearray(content)
    for what, value in edits.items():
        site = sites[what]
        struct.pack_into(site.fmt, data, site.pos, value)
    return bytes(data)


def first_operator(content: bytes, opcode: str) -> tuple[int, list[int], int]:
    """(operator index, its input tensor indices, its opcode_index) of the first ``opcode``."""
    model = fb.Model.GetRootAs(content, 0)
    wanted = getattr(fb.BuiltinOperator, opcode)
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == wanted:
            return i, [int(x) for x in op.InputsAsNumpy()], op.OpcodeIndex()
    raise LookupError(f"no {opcode} in the model")


def named_mutants(content: bytes) -> dict[str, bytes]:
    """The hostile models of issue 14, each one well-formed and wrong in one known way."""
    dw, _, _ = first_operator(content, "DEPTHWISE_CONV_2D")
    conv, conv_inputs, _ = first_operator(content, "CONV_2D")
    _, _, softmax_code = first_operator(content, "SOFTMAX")
    weights = f"tensors[{conv_inputs[1]}].quantization"
    image = f"tensors[{conv_inputs[0]}]"
    present = {site.what: site for site in mutation_sites(content)}
    codes = {f"operator_codes[{softmax_code}] slot {slot}": fb.BuiltinOperator.BATCH_MATMUL
             for slot in (4, 10)}
    edits: dict[str, dict[str, Any]] = {
        "scale 0": {f"{weights}.scale[0]": 0.0},
        "scale 1e38": {f"{weights}.scale[0]": 1e38},
        "scale 1.1e15": {f"{weights}.scale[0]": 1.1e15},
        "activation scale 0": {f"{image}.quantization.scale[0]": 0.0},
        "zero point 300": {f"{image}.quantization.zero_point[0]": 300},
        "zero point -129": {f"{image}.quantization.zero_point[0]": -129},
        "depthwise without bias": {f"operators[{dw}].inputs length": 2},
        "conv with one input": {f"operators[{conv}].inputs length": 1},
        "bias index -1": {f"operators[{dw}].inputs[2]": -1},
        "input index -1": {f"operators[{conv}].inputs[0]": -1},
        "softmax as batch_matmul": codes,
        "stride 0": {f"operators[{conv}].builtin_options slot 6": 0},
        "stride -7": {f"operators[{dw}].builtin_options slot 8": -7},
        "dilation 0": {f"operators[{conv}].builtin_options slot 12": 0},
        "huge input shape": {f"{image}.shape[1]": 1 << 20, f"{image}.shape[2]": 1 << 20},
        "channel mismatch": {f"{image}.shape[3]": 5},
        "per-channel count": {f"{weights}.scale length": 3},
    }
    # A field the converter left out (at its default) cannot be overwritten in place.
    return {name: with_edits(content, {k: v for k, v in e.items() if k in present}, present)
            for name, e in edits.items() if any(k in present for k in e)}
