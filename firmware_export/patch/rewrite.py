"""The patch rewrite: a model in, the same model with its first stages run tile by tile out.

Reader -> plan -> writer: :func:`describe_chain` reads the model's first operators into plain
:class:`~firmware_export.patch.tiles.Layer` s (convolutions, depthwise convolutions, ADD,
explicit PAD and element-wise operators such as QUANTIZE), :mod:`firmware_export.patch.tiles`
plans the tiles, and :func:`rewrite_model` writes the operators through
:mod:`edge.model.writer`:

* per tile, depth first (each tile's chain of layers runs to its end before the next tile), a
  SLICE cuts what a layer reads out of the tensor it reads (the model's input, or a larger
  region the tile computed for another reader, e.g. a residual's input), a PAD adds the border
  padding where the tile touches the image border, and the layer itself runs with VALID
  padding on the original weight and bias tensors (nothing is copied);
* CONCATENATION along the width joins each row of tiles, then along the height the rows, into
  the original split tensor, which the rest of the model reads unchanged.

Integer arithmetic is untouched: every output pixel is computed from the same inputs, weights
and quantization as before, so outputs are byte-identical. Only operators TFLM has are used
(SLICE, PAD, CONCATENATION besides the model's own).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import ExportError
from edge.model import read_model
from edge.model import schema_generated as fb
from edge.model.types import Model, Operator, Tensor
from edge.model.writer import add_buffer, opcode_index, pack_model, unpack_model
from firmware_export.patch.tiles import (
    Layer,
    Need,
    Region,
    Shape,
    Tile,
    Window,
    plan_tiles,
    region_size,
    same_pads,
    untiled_macs,
)

WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D")
PADS = ("PAD", "PADV2")
ELEMENTWISE = ("QUANTIZE", "DEQUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH",
               "HARD_SWISH", "LEAKY_RELU")
BINARY = ("ADD", "MUL", "SUB")
SLICEABLE = ("float32", "int8", "int16", "int32")  # what TFLM's SLICE, PAD, CONCATENATION take
DROPPED_METADATA = ("OfflineMemoryAllocation",)  # tensor indices change: TFLM must replan


@dataclass(frozen=True)
class Chain:
    """The model's patchable first stages.

    Attributes:
        layers: the patchable operators from the input on, in model order.
        shapes: (height, width, channels) of every activation tensor they touch.
        splits: indices into ``layers`` after which exactly one tensor (the layer's output)
            is read by the rest of the model: the places the model can be cut.
        model_macs: multiply-adds of the whole model.
    """

    layers: tuple[Layer, ...]
    shapes: dict[int, Shape]
    splits: tuple[int, ...]
    model_macs: int

    def region_macs(self, split: int) -> int:
        return untiled_macs(self.layers[: split + 1], self.shapes)


def op_macs(op: Operator, tensors: Sequence[Tensor]) -> int:
    """Multiply-adds of one operator (convolutions and fully-connected layers; others 0)."""
    if op.opcode in WINDOWED and len(op.inputs) > 1:
        out, weights = tensors[op.outputs[0]].shape, tensors[op.inputs[1]].shape
        if len(out) == 4 and len(weights) == 4:
            per_pixel = weights[1] * weights[2] * (
                weights[3] if op.opcode == "DEPTHWISE_CONV_2D" else weights[0] * weights[3])
            return out[1] * out[2] * per_pixel
    if op.opcode == "FULLY_CONNECTED" and len(op.inputs) > 1:
        weights = tensors[op.inputs[1]].shape
        rows = tensors[op.outputs[0]].size // max(weights[0], 1) if weights else 0
        return rows * int(np.prod(weights)) if weights else 0
    return 0


def _spatial(tensor: Tensor) -> Shape | None:
    if len(tensor.shape) == 4 and tensor.shape[0] == 1 and min(tensor.shape) > 0:
        return tensor.shape[1], tensor.shape[2], tensor.shape[3]
    return None


def _layer(op: Operator, tensors: Sequence[Tensor], shapes: dict[int, Shape]) -> Layer | None:
    """``op`` as a tile layer, or None when tiles cannot run it."""
    out = _spatial(tensors[op.outputs[0]]) if len(op.outputs) == 1 else None
    if out is None or not op.inputs or op.inputs[0] not in shapes:
        return None
    if tensors[op.outputs[0]].dtype not in SLICEABLE:
        return None  # a uint8 model: TFLM's SLICE, PAD and CONCATENATION cannot carry it
    source = shapes[op.inputs[0]]
    if op.opcode in WINDOWED:
        return _window_layer(op, tensors, source, out)
    if op.opcode in PADS:
        return _pad_layer(op, tensors, source, out)
    if op.opcode in ELEMENTWISE and len(op.inputs) == 1 and source == out:
        return Layer(op.index, (op.inputs[0],), op.outputs[0], None, 0)
    if op.opcode in BINARY and len(op.inputs) == 2:
        return _binary_layer(op, tensors, shapes, out)
    return None


def _binary_layer(op: Operator, tensors: Sequence[Tensor], shapes: dict[int, Shape],
                  out: Shape) -> Layer | None:
    """Two activations of the output's shape, or one and a constant broadcast per pixel."""
    activations = tuple(t for t in op.inputs if not tensors[t].is_constant)
    if any(shapes.get(t) != out for t in activations) or not activations:
        return None
    for t in op.inputs:
        if tensors[t].is_constant and tensors[t].size not in (1, out[2]):
            return None  # a constant that varies over height or width
        if tensors[t].is_constant and tensors[t].shape and tensors[t].shape[-1] not in (1, out[2]):
            return None
    return Layer(op.index, activations, op.outputs[0], None, out[2])


def _window_layer(op: Operator, tensors: Sequence[Tensor], source: Shape, out: Shape
                  ) -> Layer | None:
    if len(op.inputs) < 2 or any(not tensors[t].is_constant for t in op.inputs[1:] if t >= 0):
        return None
    weights = tensors[op.inputs[1]].shape
    if len(weights) != 4:
        return None
    kernel = (weights[1], weights[2])
    stride = (op.options.get("stride_h", 1), op.options.get("stride_w", 1))
    dilation = (op.options.get("dilation_h_factor", 1), op.options.get("dilation_w_factor", 1))
    if op.options.get("padding", "SAME") == "SAME":
        rows = same_pads(source[0], kernel[0], stride[0], dilation[0])
        cols = same_pads(source[1], kernel[1], stride[1], dilation[1])
        pads = (rows[0], rows[1], cols[0], cols[1])
    else:
        pads = (0, 0, 0, 0)
    window = Window(kernel, stride, dilation, pads)
    if (window.output_size(0, source[0]), window.output_size(1, source[1])) != out[:2]:
        return None
    per_pixel = kernel[0] * kernel[1] * (
        weights[3] if op.opcode == "DEPTHWISE_CONV_2D" else weights[0] * weights[3])
    return Layer(op.index, (op.inputs[0],), op.outputs[0], window, per_pixel)


def _pad_layer(op: Operator, tensors: Sequence[Tensor], source: Shape, out: Shape
               ) -> Layer | None:
    """An explicit PAD of height and width only (what PyTorch's converter writes)."""
    if len(op.inputs) < 2 or not tensors[op.inputs[1]].is_constant:
        return None
    if op.opcode == "PADV2" and (len(op.inputs) < 3 or not tensors[op.inputs[2]].is_constant):
        return None
    paddings = tensors[op.inputs[1]].array().astype(np.int64).reshape(-1)
    if len(paddings) != 8 or paddings[0] or paddings[1] or paddings[6] or paddings[7]:
        return None
    pads = (int(paddings[2]), int(paddings[3]), int(paddings[4]), int(paddings[5]))
    if min(pads) < 0:
        return None
    window = Window((1, 1), pads=pads)
    if (window.output_size(0, source[0]), window.output_size(1, source[1])) != out[:2]:
        return None
    return Layer(op.index, (op.inputs[0],), op.outputs[0], window, 0)


def describe_chain(model: Model, start: int | None = None) -> Chain:
    """The model's patchable stages from operator ``start`` (default: the input) on, and where
    the model can be cut.

    Raises:
        ExportError: the model has no single 4-D input of batch 1, or more than the one tensor
            ``start`` reads is alive before it.
    """
    graph = model.main
    tensors = graph.tensors
    model_macs = sum(op_macs(op, tensors) for op in graph.operators)
    if len(graph.inputs) != 1 or _spatial(tensors[graph.inputs[0]]) is None:
        raise ExportError(f"{model.source}: patch-based inference needs one image input "
                          "(1 x height x width x channels)")
    if start is None:
        start = _untiled_prefix(model)
        source = graph.operators[start - 1].outputs[0] if start else graph.inputs[0]
    else:
        source = graph.operators[start].inputs[0]
        if _live_before(model, start) != {source} or _spatial(tensors[source]) is None:
            raise ExportError(f"{model.source}: the model cannot be tiled from operator "
                              f"{start} on (more than its input is alive there)")
    shapes: dict[int, Shape] = {source: _spatial(tensors[source])}  # type: ignore[dict-item]
    layers: list[Layer] = []
    for op in graph.operators[start:]:
        layer = _layer(op, tensors, shapes)
        if layer is None:
            break
        layers.append(layer)
        shapes[layer.output] = _spatial(tensors[layer.output])  # type: ignore[assignment]
    return Chain(tuple(layers), shapes, _cut_points(model, layers, source), model_macs)


def _live_before(model: Model, start: int) -> set[int]:
    graph = model.main
    produced = set(graph.inputs)
    for op in graph.operators[:start]:
        produced.update(op.outputs)
    later = {t for op in graph.operators[start:] for t in op.inputs} | set(graph.outputs)
    return {t for t in produced & later if not graph.tensors[t].is_constant}


def _untiled_prefix(model: Model) -> int:
    """Operators run untiled before the tiles: a QUANTIZE of a uint8 input (TFLM's SLICE and
    PAD take no uint8), after which the int8 image is the tiles' input."""
    graph = model.main
    first = graph.operators[0] if graph.operators else None
    if (first is not None and first.opcode in ELEMENTWISE and first.inputs == graph.inputs
            and graph.tensors[graph.inputs[0]].dtype not in SLICEABLE
            and len(first.outputs) == 1
            and graph.tensors[first.outputs[0]].dtype in SLICEABLE):
        return 1
    return 0


def _cut_points(model: Model, layers: Sequence[Layer], source: int) -> tuple[int, ...]:
    graph = model.main
    last_reader: dict[int, int] = {}
    for op in graph.operators:
        for t in op.inputs:
            last_reader[t] = op.index
    for t in graph.outputs:
        last_reader[t] = len(graph.operators)
    cuts = []
    live = {source}
    for k, layer in enumerate(layers):
        live.add(layer.output)
        live = {t for t in live if last_reader.get(t, -1) > layer.op}
        height, width, _ = _spatial(graph.tensors[layer.output]) or (0, 0, 0)
        if live == {layer.output} and height > 1 and width > 1:
            cuts.append(k)
    return tuple(cuts)


@dataclass(frozen=True)
class Rewrite:
    """A rewritten model and what was done."""

    content: bytes
    model: Model
    split: int  # index of the last patched layer
    grid: tuple[int, int]
    ops: tuple[int, int]  # the original operator range [first, last] run on tiles
    split_tensor: str
    macs: int  # the rewritten model's multiply-adds
    model_macs: int  # the original's
    original: bytes = field(default=b"", repr=False)  # the untiled model's file

    @property
    def overhead(self) -> float:
        return self.macs / self.model_macs - 1 if self.model_macs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"grid": f"{self.grid[0]}x{self.grid[1]}", "operators": list(self.ops),
                "split_tensor": self.split_tensor, "mac_overhead": round(self.overhead, 4),
                "macs": self.macs, "model_macs": self.model_macs,
                "model_bytes": len(self.content)}


def rewrite_model(model: Model, chain: Chain, split: int, grid: tuple[int, int]) -> Rewrite:
    """``model`` with ``chain.layers[: split + 1]`` run over a ``grid`` of tiles.

    Raises:
        ExportError: ``split`` is not a cut point, or the grid does not fit the split tensor.
    """
    if split not in chain.splits:
        where = chain.layers[split].op if 0 <= split < len(chain.layers) else split
        cuts = ", ".join(str(chain.layers[s].op) for s in chain.splits)
        raise ExportError(f"{model.source}: the model cannot be cut after operator {where} "
                          f"(cut points: {cuts})")
    layers = chain.layers[: split + 1]
    try:
        tiles = plan_tiles(layers, chain.shapes, grid)
    except ValueError as e:
        raise ExportError(f"{model.source}: grid {grid[0]}x{grid[1]}: {e}") from None
    writer = _Writer(model, unpack_model(model.content))
    writer.emit(layers, tiles, grid)
    content = writer.finish(layers[0].op, layers[-1].op + 1)
    rewritten = read_model(content, f"{model.source} (patched {grid[0]}x{grid[1]})")
    macs = sum(op_macs(op, rewritten.main.tensors) for op in rewritten.main.operators)
    split_tensor = model.main.tensors[layers[-1].output].name
    return Rewrite(content, rewritten, split, grid, (layers[0].op, layers[-1].op), split_tensor,
                   macs, chain.model_macs, model.content)


class _Writer:
    """Builds the rewritten operator list on the object form of the model."""

    def __init__(self, model: Model, obj: Any) -> None:
        self.model = model
        self.obj = obj
        self.graph = obj.subgraphs[0]
        self.ops: list[Any] = []
        self.constants: dict[bytes, int] = {}
        self.empty_buffer = 0 if not (obj.buffers[0].data is not None
                                      and len(obj.buffers[0].data)) else add_buffer(obj)

    # --- tensors -------------------------------------------------------------------------
    def _tensor_like(self, original: int, region: Region, name: str) -> int:
        source = self.graph.tensors[original]
        tensor = fb.TensorT()
        height, width = region_size(region)
        tensor.shape = [1, height, width, int(source.shape[3])]
        tensor.type = source.type
        tensor.buffer = self.empty_buffer
        tensor.name = name
        tensor.quantization = copy.deepcopy(source.quantization)
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def _constant(self, values: Sequence[int], shape: Sequence[int], name: str) -> int:
        data = np.asarray(values, dtype="<i4").tobytes()
        key = bytes(str(list(shape)), "ascii") + data
        if key in self.constants:
            return self.constants[key]
        tensor = fb.TensorT()
        tensor.shape = list(shape)
        tensor.type = fb.TensorType.INT32
        tensor.buffer = add_buffer(self.obj, data)
        tensor.name = name
        self.graph.tensors.append(tensor)
        self.constants[key] = len(self.graph.tensors) - 1
        return self.constants[key]

    # --- operators -----------------------------------------------------------------------
    def _op(self, builtin: int, inputs: Sequence[int], outputs: Sequence[int],
            options_type: int = 0, options: Any = None) -> None:
        op = fb.OperatorT()
        op.opcodeIndex = opcode_index(self.obj, builtin)
        op.inputs, op.outputs = list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.ops.append(op)

    def _slice(self, source: int, have: Region, want: Region, name: str) -> int:
        begin = [0, want[0][0] - have[0][0], want[1][0] - have[1][0], 0]
        height, width = region_size(want)
        size = [1, height, width, int(self.graph.tensors[source].shape[3])]
        out = self._tensor_like(source, want, name)
        self._op(fb.BuiltinOperator.SLICE,
                 [source, self._constant(begin, [4], "patch/begin"),
                  self._constant(size, [4], "patch/size")], [out],
                 fb.BuiltinOptions.SliceOptions, fb.SliceOptionsT())
        return out

    def _pad(self, source: int, region: Region, pads: Sequence[int], name: str,
             like: Any = None) -> int:
        """PAD ``source`` (covering ``region``) by (top, bottom, left, right)."""
        top, bottom, left, right = pads
        padded = ((region[0][0] - top, region[0][1] + bottom),
                  (region[1][0] - left, region[1][1] + right))
        out = self._tensor_like(source, padded, name)
        paddings = self._constant([0, 0, top, bottom, left, right, 0, 0], [4, 2],
                                  "patch/paddings")
        if like is None:
            self._op(fb.BuiltinOperator.PAD, [source, paddings], [out],
                     fb.BuiltinOptions.PadOptions, fb.PadOptionsT())
        else:  # the model's own PAD/PADV2: same operator, same constant value
            op = copy.deepcopy(like)
            op.inputs = [source, paddings, *list(like.inputs)[2:]]
            op.outputs = [out]
            self.ops.append(op)
        return out

    # --- the tiles -----------------------------------------------------------------------
    def emit(self, layers: Sequence[Layer], tiles: Sequence[Tile], grid: tuple[int, int]
             ) -> None:
        split = layers[-1].output
        rows: list[int] = []
        row_tiles: list[int] = []
        for tile in tiles:
            row_tiles.append(self._emit_tile(tile))
            if tile.col == grid[1] - 1:
                if grid[1] == 1:
                    rows.append(row_tiles[0])
                else:
                    target = split if grid[0] == 1 else self._tensor_like(
                        split, ((tile.steps[-1].out[0]), (0, self.graph.tensors[split].shape[2])),
                        f"{self._name(split)}/patch_row{tile.row}")
                    self._concat(row_tiles, target, axis=2)
                    rows.append(target)
                row_tiles = []
        if grid[0] > 1:
            self._concat(rows, split, axis=1)

    def _concat(self, inputs: Sequence[int], output: int, axis: int) -> None:
        options = fb.ConcatenationOptionsT()
        options.axis = axis
        self._op(fb.BuiltinOperator.CONCATENATION, inputs, [output],
                 fb.BuiltinOptions.ConcatenationOptions, options)

    def _name(self, tensor: int) -> str:
        """A short name (the original's can be hundreds of bytes; each tile would copy it)."""
        return f"patch/t{tensor}"

    def _emit_tile(self, tile: Tile) -> int:
        """Emit one tile's operators; return the tensor holding its part of the split."""
        made: dict[int, int] = {}  # original tensor -> this tile's tensor
        reads: dict[tuple[int, Region, tuple[int, ...]], int] = {}
        split = tile.steps[-1].layer.output
        tag = f"patch{tile.row}_{tile.col}"
        for step in tile.steps:
            original = self.graph.operators[step.layer.op]
            is_pad = self.model.main.operators[step.layer.op].opcode in PADS
            inputs = [self._read(need, made, tile, reads, tag, original if is_pad else None)
                      for need in step.needs]
            if is_pad:
                made[step.layer.output] = inputs[0]  # the model's PAD is the tile's border PAD
                continue
            out = self._tensor_like(step.layer.output, step.out,
                                    f"{self._name(step.layer.output)}/{tag}")
            op = copy.deepcopy(original)
            tiled = dict(zip(step.layer.inputs, inputs, strict=True))
            op.inputs = [tiled.get(t, t) for t in original.inputs]
            op.outputs = [out]
            if step.layer.window is not None:
                op.builtinOptions.padding = fb.Padding.VALID
            self.ops.append(op)
            made[step.layer.output] = out
        return made[split]

    def _read(self, need: Need, made: dict[int, int], tile: Tile,
              reads: dict[tuple[int, Region, tuple[int, ...]], int], tag: str,
              pad_like: Any) -> int:
        key = (need.tensor, need.region, need.pads if pad_like is None else (-1, *need.pads))
        if key in reads:
            return reads[key]
        if need.tensor in made:
            source, have = made[need.tensor], tile.regions[need.tensor]
        else:  # the chain's input: the whole tensor
            source = need.tensor
            shape = self.graph.tensors[source].shape
            have = ((0, int(shape[1])), (0, int(shape[2])))
        name = self._name(need.tensor)
        if have != need.region:
            source = self._slice(source, have, need.region, f"{name}/{tag}_slice")
        if need.padded:
            source = self._pad(source, need.region, need.pads, f"{name}/{tag}_pad", pad_like)
        reads[key] = source
        return source

    def finish(self, first: int, end: int) -> bytes:
        """Put the tiles in place of operators ``[first, end)``, drop what is no longer used,
        and pack."""
        original = list(self.graph.operators)
        self.graph.operators = original[:first] + self.ops + original[end:]
        _compact(self.obj)
        self.obj.metadata = [m for m in self.obj.metadata or []
                             if _text(m.name) not in DROPPED_METADATA]
        return pack_model(self.obj)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _compact(obj: Any) -> None:
    """Remove tensors no operator or graph input/output uses, then unused buffers."""
    graph = obj.subgraphs[0]
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.operators:
        used |= {t for t in (*op.inputs, *op.outputs, *(op.intermediates or [])) if t >= 0}
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(indices: Any) -> list[int]:
        return [new_index[t] if t >= 0 else t for t in indices]

    graph.tensors = [graph.tensors[t] for t in keep]
    graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
    for op in graph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None:
            op.intermediates = remap(op.intermediates)
    for signature in obj.signatureDefs or []:
        if signature.subgraphIndex == 0:
            for entry in (*(signature.inputs or []), *(signature.outputs or [])):
                entry.tensorIndex = new_index[entry.tensorIndex]
    _compact_buffers(obj)


def _compact_buffers(obj: Any) -> None:
    used = {0}
    for graph in obj.subgraphs:
        used |= {t.buffer for t in graph.tensors}
    used |= {m.buffer for m in obj.metadata or []}
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}
    obj.buffers = [obj.buffers[b] for b in keep]
    for graph in obj.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new_index[tensor.buffer]
    for entry in obj.metadata or []:
        entry.buffer = new_index[entry.buffer]
