"""The MobileNetV2 family under ``--patch auto``: which width and resolution fit a board when
the export tiles the first stages.

:mod:`firmware_export.plan.mobilenet` predicts the untiled arena of every family member from a
chain of buffer sizes. What tiling does depends on the operators themselves (halos, border
PADs, the nodes each tile duplicates in TFLM's tail), so here each member is written as an int8
``.tflite`` with the graph ``edge-model train`` + ``edge-model quantize`` produce (rescaling
MUL/ADD, the first convolution with SAME padding and stride 2, the inverted-residual blocks, the
last 1x1 convolution, MEAN, FULLY_CONNECTED, SOFTMAX; every constant zero) and put through the
same :func:`~firmware_export.patch.choose.choose_patch` and arena plan as the export. Weights do
not change the plan, only their sizes do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.cache import cache_root
from edge.errors import ExportError
from edge.model import Model, read_model
from edge.model import schema_generated as fb
from edge.model.writer import add_buffer, opcode_index, pack_model
from edge.outputs import atomic_write_bytes
from firmware_export.patch.choose import choose_patch, predicted_minimum
from firmware_export.plan.abi import Abi
from firmware_export.plan.mobilenet import (
    BLOCKS,
    RESOLUTIONS,
    WIDTHS,
    make_divisible,
    member_label,
    member_order,
    mobilenet_v2_arena,
    mobilenet_v2_model_bytes,
)

log = logging.getLogger(__name__)

RELU6 = fb.ActivationFunctionType.RELU6


class _Graph:
    """A single-subgraph int8 model under construction (object API)."""

    def __init__(self) -> None:
        self.model = fb.ModelT()
        self.model.version = 3
        self.model.operatorCodes, self.model.buffers = [], [fb.BufferT()]
        self.graph = fb.SubGraphT()
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.graph.tensors, self.graph.operators = self.tensors, self.operators
        self.model.subgraphs = [self.graph]

    def tensor(self, shape: Sequence[int], name: str, dtype: int = fb.TensorType.INT8,
               data: bytes | None = None, channels: int = 0) -> int:
        tensor = fb.TensorT()
        tensor.shape, tensor.type, tensor.name = list(shape), dtype, name
        tensor.buffer = add_buffer(self.model, data) if data is not None else 0
        quant = fb.QuantizationParametersT()
        count = channels or 1
        quant.scale = [1 / 128] * count
        quant.zeroPoint = [0 if channels or data is not None else -128] * count
        quant.quantizedDimension = 3 if channels and len(shape) == 4 and shape[0] == 1 else 0
        tensor.quantization = quant
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def constant(self, shape: Sequence[int], name: str, dtype: int = fb.TensorType.INT8,
                 channels: int = 0) -> int:
        itemsize = 4 if dtype == fb.TensorType.INT32 else 1
        size = int(np.prod(shape)) * itemsize if shape else itemsize
        return self.tensor(shape, name, dtype, bytes(size), channels)

    def op(self, builtin: int, inputs: Sequence[int], output: int, options_type: int = 0,
           options: Any = None) -> int:
        op = fb.OperatorT()
        op.opcodeIndex = opcode_index(self.model, builtin)
        op.inputs, op.outputs = list(inputs), [output]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.operators.append(op)
        return output

    def conv(self, x: int, side: int, channels: int, out: int, kernel: int, stride: int,
             name: str, activation: int = RELU6, depthwise: bool = False) -> tuple[int, int]:
        out_side = -(-side // stride)
        if depthwise:
            weights = self.constant([1, kernel, kernel, out], f"{name}/dw", channels=out)
            options: Any = fb.DepthwiseConv2DOptionsT(fb.Padding.SAME, stride, stride, 1,
                                                      activation)
            builtin = fb.BuiltinOperator.DEPTHWISE_CONV_2D
            kind = fb.BuiltinOptions.DepthwiseConv2DOptions
        else:
            weights = self.constant([out, kernel, kernel, channels], f"{name}/w", channels=out)
            options = fb.Conv2DOptionsT(fb.Padding.SAME, stride, stride, activation)
            builtin, kind = fb.BuiltinOperator.CONV_2D, fb.BuiltinOptions.Conv2DOptions
        bias = self.constant([out], f"{name}/b", fb.TensorType.INT32, channels=out)
        y = self.tensor([1, out_side, out_side, out], name)
        return self.op(builtin, [x, weights, bias], y, kind, options), out_side


def mobilenet_v2_model(width: float, resolution: int, classes: int) -> Model:
    """An int8 Keras-style MobileNetV2 at ``width`` / ``resolution`` (zero weights)."""
    g = _Graph()
    x = g.tensor([1, resolution, resolution, 3], "input")
    g.graph.inputs = [x]
    for builtin, kind, options, tag in (
            (fb.BuiltinOperator.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT(), "scale"),
            (fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, fb.AddOptionsT(), "offset")):
        x = g.op(builtin, [x, g.constant([], f"rescale/{tag}")],
                 g.tensor([1, resolution, resolution, 3], f"rescale/{tag}_out"), kind, options)
    channels = make_divisible(32 * width)
    x, side = g.conv(x, resolution, 3, channels, 3, 2, "conv1")
    block = 0
    for t, c, n, s in BLOCKS:
        out = make_divisible(c * width)
        for i in range(n):
            stride, name = (s if i == 0 else 1), f"block_{block}"
            y, hidden = x, channels * t
            if t != 1:
                y, _ = g.conv(y, side, channels, hidden, 1, 1, f"{name}/expand")
            y, new_side = g.conv(y, side, hidden, hidden, 3, stride, f"{name}/depthwise",
                                 depthwise=True)
            y, _ = g.conv(y, new_side, hidden, out, 1, 1, f"{name}/project", activation=0)
            if stride == 1 and channels == out:
                y = g.op(fb.BuiltinOperator.ADD, [x, y],
                         g.tensor([1, new_side, new_side, out], f"{name}/add"),
                         fb.BuiltinOptions.AddOptions, fb.AddOptionsT())
            x, channels, side, block = y, out, new_side, block + 1
    last = make_divisible(1280 * width) if width > 1.0 else 1280
    x, _ = g.conv(x, side, channels, last, 1, 1, "conv_last")
    axes = g.tensor([2], "mean/axes", fb.TensorType.INT32,
                    np.array([1, 2], "<i4").tobytes())
    x = g.op(fb.BuiltinOperator.MEAN, [x, axes], g.tensor([1, last], "pool"),
             fb.BuiltinOptions.ReducerOptions, fb.ReducerOptionsT(False))
    weights = g.constant([classes, last], "fc/w", channels=classes)
    bias = g.constant([classes], "fc/b", fb.TensorType.INT32, channels=classes)
    x = g.op(fb.BuiltinOperator.FULLY_CONNECTED, [x, weights, bias],
             g.tensor([1, classes], "logits"), fb.BuiltinOptions.FullyConnectedOptions,
             fb.FullyConnectedOptionsT())
    x = g.op(fb.BuiltinOperator.SOFTMAX, [x], g.tensor([1, classes], "probabilities"),
             fb.BuiltinOptions.SoftmaxOptions, fb.SoftmaxOptionsT(1.0))
    g.graph.outputs = [x]
    label = f"MobileNetV2 {width:g}/{resolution}"
    return read_model(pack_model(g.model), name=label)


@dataclass(frozen=True)
class PatchedMember:
    """One family member planned as the export ships it, untiled and with ``--patch auto``."""

    width: float
    resolution: int
    untiled: int  # predicted minimum arena without patching
    patched: int  # with --patch auto (= untiled when auto keeps the model untiled)
    grid: str | None  # auto's choice, e.g. "4x4+2x2"; None: untiled
    model_bytes: int

    @property
    def label(self) -> str:
        return member_label(self.width, self.resolution)

    @property
    def size_key(self) -> tuple[float, float]:
        return member_order(self.width, self.resolution)

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "resolution": self.resolution,
                "arena_untiled": self.untiled, "arena_patched": self.patched,
                "patch": self.grid, "model_bytes": self.model_bytes}


_PLANNED: dict[tuple[float, int, int, str, str, int], PatchedMember] = {}
CACHE_FOLDER = "patch-family"
# What a plan depends on besides its arguments: the writer above, the rewrite, the search and
# the arena model. Their source is hashed into the cache key, so a change re-plans.
_SOURCES = ("firmware_export/patch", "firmware_export/plan", "edge/model")


def _code_hash() -> str:
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted((root / folder).glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def plan_member(width: float, resolution: int, classes: int, kernels: str, abi: Abi,
                margin: int) -> PatchedMember:
    """``width`` / ``resolution`` planned untiled and with ``--patch auto`` (arena sizes
    include ``margin``, as ``kTensorArenaSize`` does); remembered for the process and in the
    cache (``<cache root>/patch-family``, keyed by the planning code's hash)."""
    key = (width, resolution, classes, kernels, abi.name, margin)
    if key in _PLANNED:
        return _PLANNED[key]
    name = hashlib.sha256(f"{key}:{abi.layouts}:{_code_hash()}".encode()).hexdigest()[:24]
    path = cache_root() / CACHE_FOLDER / f"{name}.json"
    try:
        member = PatchedMember(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        member = _plan_member(width, resolution, classes, kernels, abi, margin)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(asdict(member)).encode())
        except OSError as error:  # a read-only cache costs time, not the result
            log.info("cannot cache the plan of %s in %s: %s", member.label, path, error)
    _PLANNED[key] = member
    return member


def _plan_member(width: float, resolution: int, classes: int, kernels: str, abi: Abi,
                 margin: int) -> PatchedMember:
    model = mobilenet_v2_model(width, resolution, classes)
    untiled = predicted_minimum(model, kernels, abi, "auto") + margin
    try:
        choice = choose_patch(model, "auto", kernels, abi, "auto")
    except ExportError as error:
        log.info("%s: --patch auto: %s", model.source, error)
        choice = None
    patched = untiled if choice is None else choice.after + margin
    return PatchedMember(width, resolution, untiled, patched,
                         None if choice is None else choice.grid,
                         mobilenet_v2_model_bytes(width, classes))


def largest_patched(ram: int, flash: int, classes: int, kernels: str, abi: Abi,
                    margin: int, floor: tuple[float, float] = (0.0, 0.0)
                    ) -> PatchedMember | None:
    """The largest family member (by width x resolution^2) whose ``--patch auto`` arena fits
    ``ram`` and whose model fits ``flash``, among those larger than ``floor`` (the size key of
    the largest untiled fit).

    Each try plans a model (seconds), so per width the resolutions are tried upwards from the
    floor and the first that does not fit ends that width (a larger input never needs less).
    """
    best: PatchedMember | None = None
    for width in WIDTHS:
        if mobilenet_v2_model_bytes(width, classes) > flash:
            continue
        for resolution in sorted(RESOLUTIONS):
            key = (width * resolution ** 2, width)
            if key <= floor or (best is not None and key <= best.size_key):
                continue
            if mobilenet_v2_arena(width, resolution, abi.pointer_size, classes).tail > ram:
                break  # the tail alone does not fit: no tiling helps
            member = plan_member(width, resolution, classes, kernels, abi, margin)
            log.info("%s with --patch auto: arena %d B (untiled %d B)", member.label,
                     member.patched, member.untiled)
            if member.patched > ram:
                break
            best = member
    return best
