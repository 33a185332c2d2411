"""Per-operator cost and memory of a model, computed from the file alone.

Tensor lifetimes follow TFLite Micro: a tensor lives from the operator that produces it to the
last operator that reads it; graph inputs live from the start and graph outputs to the end;
constants live in flash and are not counted. Multiply-adds count convolutions and fully
connected layers (what papers report); parameters are the elements of their weight and bias
tensors (batch normalisation is already folded into them by the converter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.model.compat import WEIGHTED_OPS, micro_support
from edge.model.types import Model, Operator, Subgraph, Tensor

PARAMS_DEFINITION = ("elements of the constant weight and bias tensors of CONV_2D, "
                     "DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV (batch norm folded "
                     "in; quantization scales and shape constants not counted)")
MACS_DEFINITION = "multiply-accumulates of convolutions and fully connected layers"


@dataclass(frozen=True)
class OpReport:
    index: int
    opcode: str
    output_shape: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    live_bytes: int
    macs: int
    params: int


@dataclass(frozen=True)
class ResolutionRow:
    """The MobileNetV2 paper's Table 3 view: largest tensor at one spatial size."""

    height: int
    width: int
    max_channels: int
    kilobytes: float
    bottleneck_channels: int | None
    bottleneck_kilobytes: float | None


@dataclass(frozen=True)
class Lifetime:
    tensor: int
    first: int
    last: int
    size: int


@dataclass(frozen=True)
class ModelReport:
    source: str
    ops: tuple[OpReport, ...]
    total_params: int
    total_macs: int
    weight_bytes: int
    peak_live_bytes: int
    peak_op: int
    largest_io_op: int
    resolutions: tuple[ResolutionRow, ...]
    bytes_per_activation: int
    micro_runnable: bool
    micro_reason: str
    edgetpu_compiled: bool
    labels: int
    definitions: dict[str, str] = field(default_factory=lambda: {
        "params": PARAMS_DEFINITION, "macs": MACS_DEFINITION})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lifetimes(graph: Subgraph) -> list[Lifetime]:
    """First and last operator index of every non-constant tensor, as TFLite Micro counts them."""
    last_op = max(len(graph.operators) - 1, 0)
    first: dict[int, int] = {i: 0 for i in graph.inputs}
    last: dict[int, int] = {i: 0 for i in graph.inputs}
    for op in graph.operators:
        for t in op.outputs:
            first.setdefault(t, op.index)
            last[t] = max(last.get(t, op.index), op.index)
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant:
                first.setdefault(t, 0)
                last[t] = max(last.get(t, 0), op.index)
    for t in graph.outputs:
        first.setdefault(t, 0)
        last[t] = last_op
    for tensor in graph.tensors:
        if tensor.is_variable:
            first[tensor.index], last[tensor.index] = 0, last_op
    return [Lifetime(t, first[t], last[t], graph.tensors[t].nbytes)
            for t in sorted(first) if not graph.tensors[t].is_constant]


def live_bytes_per_op(graph: Subgraph) -> list[int]:
    """Bytes of tensors alive while each operator runs."""
    live = [0] * len(graph.operators)
    for life in lifetimes(graph):
        for i in range(life.first, life.last + 1):
            live[i] += life.size
    return live


def op_macs(op: Operator, tensors: tuple[Tensor, ...]) -> int:
    """Multiply-accumulates of one operator (0 for ops without weights)."""
    if op.opcode not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return 0
    weights = tensors[op.inputs[1]].shape
    out = tensors[op.outputs[0]]
    if op.opcode == "CONV_2D" and len(weights) == 4:
        return out.size * weights[1] * weights[2] * weights[3]
    if op.opcode == "DEPTHWISE_CONV_2D" and len(weights) == 4:
        return out.size * weights[1] * weights[2]
    if op.opcode == "FULLY_CONNECTED" and len(weights) == 2:
        return out.size * weights[1]
    if op.opcode == "TRANSPOSE_CONV" and len(weights) == 4:
        source = tensors[op.inputs[2]]
        return source.size * weights[0] * weights[1] * weights[2]
    return 0


def op_params(op: Operator, tensors: tuple[Tensor, ...]) -> int:
    """Elements of an operator's constant weight and bias tensors."""
    if op.opcode not in WEIGHTED_OPS:
        return 0
    bias = 3 if op.opcode == "TRANSPOSE_CONV" else 2
    positions = [1, bias]
    return sum(tensors[op.inputs[k]].size for k in positions
               if k < len(op.inputs) and op.inputs[k] >= 0
               and tensors[op.inputs[k]].is_constant)


def analyze(model: Model, bytes_per_activation: int = 1) -> ModelReport:
    """Everything ``edge-inspect`` reports about ``model``'s main subgraph."""
    graph = model.main
    tensors = graph.tensors
    live = live_bytes_per_op(graph)
    ops = []
    for op, live_now in zip(graph.operators, live, strict=True):
        activations = [t for t in op.inputs if t >= 0 and not tensors[t].is_constant]
        out_shape = tensors[op.outputs[0]].shape if op.outputs else ()
        ops.append(OpReport(
            index=op.index, opcode=op.opcode, output_shape=out_shape,
            input_bytes=sum(tensors[t].nbytes for t in activations),
            output_bytes=sum(tensors[t].nbytes for t in op.outputs),
            live_bytes=live_now, macs=op_macs(op, tensors), params=op_params(op, tensors)))
    support = micro_support(model)
    peak = max(ops, key=lambda o: o.live_bytes) if ops else None
    largest = max(ops, key=lambda o: o.input_bytes + o.output_bytes) if ops else None
    return ModelReport(
        source=model.source,
        ops=tuple(ops),
        total_params=sum(o.params for o in ops),
        total_macs=sum(o.macs for o in ops),
        weight_bytes=sum(len(t.data) for t in tensors if t.data is not None),
        peak_live_bytes=peak.live_bytes if peak else 0,
        peak_op=peak.index if peak else -1,
        largest_io_op=largest.index if largest else -1,
        resolutions=resolution_table(graph, bytes_per_activation),
        bytes_per_activation=bytes_per_activation,
        micro_runnable=support.runnable,
        micro_reason=support.reason,
        edgetpu_compiled=model.edgetpu_compiled,
        labels=len(model.labels or ()),
    )


def _bottleneck_outputs(graph: Subgraph) -> set[int]:
    """Outputs of linear 1x1 projections and of residual ADDs: MobileNetV2's bottlenecks."""
    found: set[int] = set()
    for op in graph.operators:
        linear = op.options.get("fused_activation_function", "NONE") == "NONE"
        residual = op.opcode == "ADD" and not any(graph.tensors[i].is_constant
                                                  for i in op.inputs if i >= 0)
        if residual or (op.opcode == "CONV_2D" and linear
                        and graph.tensors[op.inputs[1]].shape[1:3] == (1, 1)):
            found.update(op.outputs)
    return found


def resolution_table(graph: Subgraph, bytes_per_activation: int) -> tuple[ResolutionRow, ...]:
    """Per spatial size: the widest activation tensor and its memory, all tensors and bottlenecks.

    The MobileNetV2 paper (Table 3) reports, at 16-bit activations, MobileNetV1 1600K and
    MobileNetV2 400K: V1's figure is its widest tensor at 112x112 (64 channels), V2's is its
    widest *bottleneck* at 112x112 (16 channels), since the expanded tensors inside a block can
    be computed in slices. The "all" columns here are what a plain interpreter materialises.
    """
    bottlenecks = _bottleneck_outputs(graph)
    rows: dict[tuple[int, int], list[int]] = {}
    for tensor in graph.tensors:
        if tensor.is_constant or len(tensor.shape) != 4:
            continue
        key = (tensor.shape[1], tensor.shape[2])
        row = rows.setdefault(key, [0, 0])
        row[0] = max(row[0], tensor.shape[3])
        if tensor.index in bottlenecks:
            row[1] = max(row[1], tensor.shape[3])
    table = []
    for (h, w), (channels, bottleneck) in sorted(rows.items(), key=lambda kv: -math.prod(kv[0])):
        table.append(ResolutionRow(
            height=h, width=w, max_channels=channels,
            kilobytes=h * w * channels * bytes_per_activation / 1000,
            bottleneck_channels=bottleneck or None,
            bottleneck_kilobytes=(h * w * bottleneck * bytes_per_activation / 1000
                                  if bottleneck else None)))
    return tuple(table)
