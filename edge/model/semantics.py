"""Semantic checks: a well-formed model that is wrong never reaches an interpreter.

The bounds check (:mod:`edge.model.bounds`) proves every offset is in range; this module proves the
graph makes sense to the kernels that will run it, because LiteRT and TFLite Micro trust a model
once it parses: an operator with too few inputs, a ``-1`` (absent) input where a kernel needs a
tensor, a stride of 0 or a quantization scale of 0 or 1e38 crash them (segfault, abort, SIGFPE)
instead of failing.

Checked, per builtin operator (:data:`SPECS`): the number of inputs and outputs, which inputs may
be absent (only where LiteRT's and TFLM's kernels test for it), tensor types, shapes that agree
(convolution channels and output sizes, fully connected sizes, bias lengths), strides, dilations
and filter sizes >= 1. Per tensor: scales positive and in :data:`SCALE_RANGE`, zero points
within their type, per-channel parameter counts matching the quantized dimension, and the
rescale factors a quantized kernel derives from its tensors' scales within what fixed-point
arithmetic can hold. The list of operators is not complete and cannot be: an unseen model's
first load also runs in a child process (:mod:`edge.runtime.first_load`).

Kernel requirements were read from the kernels' ``Prepare`` functions: CONV_2D and
DEPTHWISE_CONV_2D always carry a bias here (LiteRT's optimized kernels dereference it; every
converter writes one), FULLY_CONNECTED's bias may be absent (``GetOptionalInputTensor``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ModelError
from edge.model.types import Operator, Quantization, Subgraph, Tensor

SCALE_RANGE = (1e-16, 1e8)
# A quantized kernel turns scale ratios into a fixed-point multiplier and shift. Below 2**-31 the
# shift leaves int32; from 2**8 up XNNPACK (LiteRT's default CPU delegate) aborts the process
# (measured: a depthwise filter scale giving 300 aborts, 255 runs).
MULTIPLIER_RANGE = (2.0**-31, 2.0**8)
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                    "int4": (-8, 7), "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1),
                    "uint16": (0, 65535)}
QUANTIZED_TYPES = ("int8", "uint8", "int16", "int4")
ACTIVATION_TYPES = frozenset({"float32", "int8", "uint8", "int16"})
WEIGHT_TYPES = frozenset({"float32", "int8", "uint8", "int4", "int16"})
BIAS_TYPES = frozenset({"float32", "int32", "int64"})
UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class Node:
    """One operator with its tensors resolved; ``where`` names it in messages."""

    op: Operator
    graph: Subgraph
    where: str

    def input(self, position: int) -> Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] < 0:
            return None
        return self.graph.tensors[self.op.inputs[position]]

    def need(self, position: int, role: str) -> Tensor:
        tensor = self.input(position)
        if tensor is None:
            raise self.fail(f"its {role} (input {position}) is absent")
        return tensor

    def output(self, position: int = 0) -> Tensor:
        return self.graph.tensors[self.op.outputs[position]]

    def fail(self, what: str) -> ModelError:
        return ModelError(f"invalid model: {self.where} ({self.op.opcode}): {what}; the file is "
                          "well-formed but wrong (damaged or hand-edited?): re-export it")


@dataclass(frozen=True)
class OpSpec:
    """What one builtin operator needs: input and output counts, inputs that may be absent."""

    inputs: tuple[int, int]
    outputs: tuple[int, int] = (1, 1)
    optional: frozenset[int] = field(default_factory=frozenset)
    check: Callable[[Node], None] | None = None


def check_semantics(graphs: tuple[Subgraph, ...]) -> None:
    """Check every operator and every quantized tensor of every subgraph.

    Raises:
        ModelError: the first problem, naming the subgraph, operator or tensor and the rule.
    """
    for g, graph in enumerate(graphs):
        for tensor in graph.tensors:
            if tensor.quantization is not None:
                check_quantization(tensor, f"subgraphs[{g}].tensors[{tensor.index}]")
        for op in graph.operators:
            if not op.custom:
                check_operator(Node(op, graph, f"subgraphs[{g}].operators[{op.index}]"))


def check_operator(node: Node) -> None:
    spec = SPECS.get(node.op.opcode)
    if spec is None:
        return  # not modelled here; the child-process load is the defence
    _check_counts(node, spec)
    for position, index in enumerate(node.op.inputs):
        if index < 0 and position not in spec.optional:
            raise node.fail(f"input {position} is -1 (absent), but this operator needs it")
    if node.op.opcode not in DATA_MOVEMENT:
        _check_quantized(node)
    if spec.check is not None:
        spec.check(node)
    _check_rescale(node)


def _check_counts(node: Node, spec: OpSpec) -> None:
    for kind, count, (low, high) in (("inputs", len(node.op.inputs), spec.inputs),
                                     ("outputs", len(node.op.outputs), spec.outputs)):
        if not low <= count <= high:
            wanted = (f"{low}" if low == high else f"at least {low}" if high >= UNBOUNDED
                      else f"{low} to {high}")
            raise node.fail(f"has {count} {kind}, needs {wanted}")


def check_quantization(tensor: Tensor, where: str) -> None:
    """Scales positive and sane, zero points in range, per-channel counts matching the axis."""
    q = tensor.quantization
    assert q is not None
    name = f"{where} ({tensor.name!r})"
    low, high = SCALE_RANGE
    bad = q.scale[~((q.scale >= low) & (q.scale <= high))]
    if len(bad):
        raise ModelError(f"invalid model: {name}: quantization scale {float(bad[0]):g} is "
                         f"outside [{low:g}, {high:g}] (a scale must be positive; no real model "
                         "has one this far out): the file is damaged; re-export it")
    limits = ZERO_POINT_RANGE.get(tensor.dtype)
    if limits is not None and len(q.zero_point):
        zp_low, zp_high = int(q.zero_point.min()), int(q.zero_point.max())
        if zp_low < limits[0] or zp_high > limits[1]:
            value = zp_low if zp_low < limits[0] else zp_high
            raise ModelError(f"invalid model: {name}: zero point {value} is outside "
                             f"{tensor.dtype}'s range {list(limits)}: the file is damaged")
    if q.per_channel and 0 <= q.axis < len(tensor.shape) \
            and tensor.shape[q.axis] != len(q.scale):
        raise ModelError(f"invalid model: {name}: {len(q.scale)} per-channel scales for "
                         f"dimension {q.axis} of shape {list(tensor.shape)} (size "
                         f"{tensor.shape[q.axis]}): the file is damaged")


# -- per-operator rules ----------------------------------------------------------------------


def _type_in(node: Node, tensor: Tensor, allowed: frozenset[str], role: str) -> None:
    if tensor.dtype not in allowed:
        raise node.fail(f"its {role} {tensor.name!r} is {tensor.dtype}; it must be one of "
                        f"{', '.join(sorted(allowed))}")


def _rank(node: Node, tensor: Tensor, rank: int, role: str) -> None:
    if len(tensor.shape) != rank:
        raise node.fail(f"its {role} {tensor.name!r} has shape {list(tensor.shape)}; it must "
                        f"have rank {rank}")


def _at_least_one(node: Node, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = node.op.options.get(key, 0)
        if not isinstance(value, int) or value < 1:
            raise node.fail(f"option {key} is {value!r}; it must be >= 1 (missing options "
                            "read as 0)")


def _window_out(size: int, window: int, stride: int, dilation: int, padding: object) -> int:
    effective = (window - 1) * dilation + 1
    if padding == "VALID":
        return (size - effective + stride) // stride
    return (size + stride - 1) // stride


def _spatial(node: Node, image: Tensor, window: tuple[int, int], out: Tensor) -> None:
    """Output height and width follow from the input, window, strides, dilations, padding."""
    options = node.op.options
    expected = tuple(_window_out(image.shape[1 + axis], window[axis],
                                 int(options.get(f"stride_{a}", 1)),
                                 int(options.get(f"dilation_{a}_factor", 1)),
                                 options.get("padding"))
                     for axis, a in enumerate("hw"))
    if min(expected) < 1 or tuple(out.shape[1:3]) != expected:
        raise node.fail(f"output shape {list(out.shape)} does not follow from input "
                        f"{list(image.shape)}, window {list(window)} and options {options}")


def _bias(node: Node, channels: int, required: bool) -> None:
    bias = node.input(2)
    if bias is None:
        if required:
            raise node.fail("its bias (input 2) is absent; every converter writes one")
        return
    _type_in(node, bias, BIAS_TYPES, "bias")
    if bias.size != channels:
        raise node.fail(f"bias {bias.name!r} has {bias.size} values for {channels} output "
                        "channels")


def _conv_like(node: Node, depthwise: bool) -> None:
    image, weights, out = node.need(0, "input"), node.need(1, "filter"), node.output()
    _type_in(node, image, ACTIVATION_TYPES, "input")
    _type_in(node, weights, WEIGHT_TYPES, "filter")
    for tensor, role in ((image, "input"), (weights, "filter"), (out, "output")):
        _rank(node, tensor, 4, role)
    _at_least_one(node, ("stride_w", "stride_h", "dilation_w_factor", "dilation_h_factor"))
    channels_in, channels_out = image.shape[3], out.shape[3]
    if depthwise:
        ok = weights.shape[0] == 1 and channels_in > 0 and weights.shape[3] % channels_in == 0
    else:
        ok = weights.shape[3] > 0 and channels_in % weights.shape[3] == 0 and channels_in > 0
    filter_out = weights.shape[3] if depthwise else weights.shape[0]
    if not ok or filter_out != channels_out or image.shape[0] != out.shape[0]:
        raise node.fail(f"shapes disagree: input {list(image.shape)}, filter "
                        f"{list(weights.shape)}, output {list(out.shape)}")
    _bias(node, channels_out, required=True)
    _spatial(node, image, (weights.shape[1], weights.shape[2]), out)


def _conv(node: Node) -> None:
    _conv_like(node, depthwise=False)


def _depthwise(node: Node) -> None:
    _conv_like(node, depthwise=True)


def _fully_connected(node: Node) -> None:
    image, weights, out = node.need(0, "input"), node.need(1, "weights"), node.output()
    _type_in(node, image, ACTIVATION_TYPES, "input")
    _type_in(node, weights, WEIGHT_TYPES, "weights")
    _rank(node, weights, 2, "weights")
    units, depth = weights.shape
    if depth < 1 or image.size % depth or not out.shape or out.shape[-1] != units:
        raise node.fail(f"shapes disagree: input {list(image.shape)}, weights "
                        f"{list(weights.shape)}, output {list(out.shape)}")
    _bias(node, units, required=False)


def _pool(node: Node) -> None:
    image, out = node.need(0, "input"), node.output()
    _type_in(node, image, ACTIVATION_TYPES, "input")
    _rank(node, image, 4, "input")
    _rank(node, out, 4, "output")
    _at_least_one(node, ("stride_w", "stride_h", "filter_width", "filter_height"))
    window = (int(node.op.options["filter_height"]), int(node.op.options["filter_width"]))
    if image.shape[0] != out.shape[0] or image.shape[3] != out.shape[3]:
        raise node.fail(f"input {list(image.shape)} and output {list(out.shape)} disagree")
    _spatial(node, image, window, out)


def _same_shape(node: Node) -> None:
    image, out = node.need(0, "input"), node.output()
    if image.shape != out.shape:
        raise node.fail(f"input {list(image.shape)} and output {list(out.shape)} must have "
                        "the same shape")


def _softmax(node: Node) -> None:
    _same_shape(node)
    image, out = node.need(0, "input"), node.output()
    if image.dtype != out.dtype and (image.dtype, out.dtype) != ("int8", "int16"):
        raise node.fail(f"input is {image.dtype} but output is {out.dtype}")
    if not image.shape or image.shape[-1] < 1:
        raise node.fail(f"input {list(image.shape)} has no classes")


def _same_size(node: Node) -> None:
    image, out = node.need(0, "input"), node.output()
    if image.size != out.size:
        raise node.fail(f"input {list(image.shape)} has {image.size} elements but output "
                        f"{list(out.shape)} has {out.size}")


def _reshape(node: Node) -> None:
    """Sizes agree, and a shape input is an int32 vector that gives the output's shape."""
    _same_size(node)
    shape = node.input(1)
    if shape is None:
        return
    if shape.dtype != "int32" or len(shape.shape) > 1:
        raise node.fail(f"its shape input {shape.name!r} is {shape.dtype} {list(shape.shape)}; "
                        "it must be an int32 vector")
    if shape.is_constant:
        values = [int(v) for v in shape.array().reshape(-1)]
        out = node.output().shape
        if len(values) != len(out) or any(v not in (d, -1) for v, d in zip(values, out,
                                                                           strict=False)):
            said = values if len(values) <= 8 else [*values[:8], "..."]
            raise node.fail(f"its shape input says {said} ({len(values)} values) but the "
                            f"output is {list(out)}")


def _broadcast(node: Node) -> None:
    a, b, out = node.need(0, "first input"), node.need(1, "second input"), node.output()
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise node.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not "
                        "broadcast") from None
    if math.prod(shape) != out.size:
        raise node.fail(f"inputs {list(a.shape)} and {list(b.shape)} broadcast to "
                        f"{list(shape)} but the output is {list(out.shape)}")


def _rescale_pairs(node: Node) -> list[tuple[float, float, str]]:
    """(numerator scale, denominator scale, what) for the multipliers a kernel derives."""
    out = node.output()
    tensors = [node.input(i) for i in range(len(node.op.inputs))]
    pairs = []
    if node.op.opcode in WEIGHTED:
        image, weights = tensors[0], tensors[1]
        if image is not None and weights is not None and _per_tensor(image) \
                and weights.quantization is not None and _per_tensor(out):
            for s in weights.quantization.scale:
                pairs.append((_scale(image) * float(s), _scale(out), "input x filter / output"))
        return pairs
    if node.op.opcode == "MUL" and all(t is not None and _per_tensor(t) for t in tensors) \
            and _per_tensor(out):
        a, b = (t for t in tensors if t is not None)
        pairs.append((_scale(a) * _scale(b), _scale(out), "input x input / output"))
    for tensor in tensors:
        if tensor is not None and not tensor.is_constant and _per_tensor(tensor) \
                and _per_tensor(out):
            pairs.append((_scale(tensor), _scale(out), "input / output"))
    return pairs


def _check_rescale(node: Node) -> None:
    out = node.output()
    if out.dtype not in QUANTIZED_TYPES or node.op.opcode in RESCALE_FREE:
        return
    low, high = MULTIPLIER_RANGE
    for numerator, denominator, what in _rescale_pairs(node):
        ratio = numerator / denominator
        if not low <= ratio <= high:
            raise node.fail(f"its quantization scales give a rescale factor ({what}) of "
                            f"{ratio:.3g}, outside [{low:.3g}, {high:.3g}] that fixed-point "
                            "kernels can represent")


def _check_quantized(node: Node) -> None:
    """Integer tensors of an arithmetic operator carry quantization (kernels divide by it)."""
    positions = [("input", i) for i in range(len(node.op.inputs))]
    positions += [("output", i) for i in range(len(node.op.outputs))]
    for role, i in positions:
        tensor = node.input(i) if role == "input" else node.output(i)
        if tensor is not None and tensor.dtype in QUANTIZED_TYPES and tensor.quantization is None:
            raise node.fail(f"its {role} {i} {tensor.name!r} is {tensor.dtype} without "
                            "quantization parameters")


def _per_tensor(tensor: Tensor) -> bool:
    return tensor.quantization is not None and not tensor.quantization.per_channel


def _scale(tensor: Tensor) -> float:
    q: Quantization | None = tensor.quantization
    assert q is not None
    return float(q.scale[0])


WEIGHTED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})
# Output scales fixed by the kernel (1/256, 1/32768) or no arithmetic on scales.
RESCALE_FREE = frozenset({"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX", "RESHAPE", "SQUEEZE",
                          "EXPAND_DIMS", "GATHER", "TRANSPOSE", "SLICE", "STRIDED_SLICE",
                          "SPLIT", "SPLIT_V", "PACK", "UNPACK", "SHAPE", "ARG_MAX", "ARG_MIN",
                          "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "CAST"})
# Operators that move or index values without arithmetic on them.
DATA_MOVEMENT = RESCALE_FREE - {"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX"}


def _unary(check: Callable[[Node], None] | None = None) -> OpSpec:
    return OpSpec((1, 1), check=check)


def _binary(check: Callable[[Node], None] | None = _broadcast) -> OpSpec:
    return OpSpec((2, 2), check=check)


SPECS: dict[str, OpSpec] = {
    "CONV_2D": OpSpec((3, 3), check=_conv),
    "DEPTHWISE_CONV_2D": OpSpec((3, 3), check=_depthwise),
    "FULLY_CONNECTED": OpSpec((2, 3), (1, 2), frozenset({2}), _fully_connected),
    "TRANSPOSE_CONV": OpSpec((3, 4), optional=frozenset({3})),
    "AVERAGE_POOL_2D": _unary(_pool),
    "MAX_POOL_2D": _unary(_pool),
    "L2_POOL_2D": _unary(_pool),
    "SOFTMAX": _unary(_softmax),
    "LOG_SOFTMAX": _unary(_same_shape),
    "RESHAPE": OpSpec((1, 2), check=_reshape),  # a -1 shape input segfaults LiteRT
    "SQUEEZE": _unary(_same_size),
    "EXPAND_DIMS": _binary(_same_size),
    "QUANTIZE": _unary(_same_shape),
    "DEQUANTIZE": _unary(_same_shape),
    "CONCATENATION": OpSpec((1, UNBOUNDED)),
    "PACK": OpSpec((1, UNBOUNDED)),
    "ADD_N": OpSpec((1, UNBOUNDED)),
    "UNPACK": OpSpec((1, 1), (1, UNBOUNDED)),
    "SPLIT": OpSpec((2, 2), (1, UNBOUNDED)),
    "SPLIT_V": OpSpec((3, 3), (1, UNBOUNDED)),
    "TOPK_V2": OpSpec((2, 2), (2, 2)),
    "PAD": OpSpec((2, 2)),
    "PADV2": OpSpec((2, 3)),
    "MIRROR_PAD": _binary(None),
    "MEAN": _binary(None), "SUM": _binary(None), "REDUCE_MAX": _binary(None),
    "REDUCE_MIN": _binary(None), "REDUCE_PROD": _binary(None), "REDUCE_ANY": _binary(None),
    "STRIDED_SLICE": OpSpec((4, 4)),
    "SLICE": OpSpec((3, 3)),
    "GATHER": _binary(None), "GATHER_ND": _binary(None), "TRANSPOSE": _binary(None),
    "TILE": _binary(None), "FILL": _binary(None), "BROADCAST_TO": _binary(None),
    "ARG_MAX": _binary(None), "ARG_MIN": _binary(None), "CUMSUM": _binary(None),
    "RESIZE_BILINEAR": _binary(None), "RESIZE_NEAREST_NEIGHBOR": _binary(None),
    "BATCH_TO_SPACE_ND": OpSpec((3, 3)), "SPACE_TO_BATCH_ND": OpSpec((3, 3)),
    "SELECT": OpSpec((3, 3)), "SELECT_V2": OpSpec((3, 3)),
    "BATCH_MATMUL": _binary(None),
    "ONE_HOT": OpSpec((4, 4)),
    "RANGE": OpSpec((3, 3)),
    **{name: _binary() for name in (
        "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "POW",
        "FLOOR_DIV", "FLOOR_MOD", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL",
        "NOT_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "ATAN2")},
    "PRELU": _binary(None),
    **{name: _unary(_same_shape) for name in (
        "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "HARD_SWISH",
        "LEAKY_RELU", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "NEG", "FLOOR", "CEIL",
        "ROUND", "SIN", "COS", "SQUARE", "SIGN", "LOGICAL_NOT", "CAST", "ZEROS_LIKE",
        "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION")},
    "SHAPE": _unary(), "RANK": _unary(),
    "SPACE_TO_DEPTH": _unary(_same_size), "DEPTH_TO_SPACE": _unary(_same_size),
}
