"""The buffers TFLite Micro plans in the arena head, with TFLM's own lifetime rules.

TFLM counts "allocation scopes" (``micro_allocation_info.cc``): graph inputs and outputs are
created at scope 0, operator ``i`` runs in scope ``i + 1``; a tensor lives from the scope that
creates it to the last scope that reads it, graph outputs to the last scope. Constants (tensors
with data in the flatbuffer), variables (allocated persistently) and empty tensors are not
planned. Kernel scratch buffers follow the tensors, each alive during its operator's scope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import ExportError
from edge.model.types import Model, Operator, Subgraph, Tensor
from firmware_export.plan.planner import BufferRequest, align_up

UNINITIALIZED = -1
METADATA_NAME = "OfflineMemoryAllocation"
ONLINE = -1

ScratchRule = Callable[[Operator, Sequence[Tensor]], Sequence[int]]


@dataclass(frozen=True)
class ArenaBuffer:
    """One planned buffer: a tensor (``tensor >= 0``) or a scratch buffer of operator ``op``."""

    name: str
    tensor: int
    op: int
    nbytes: int
    request: BufferRequest


def needs_planning(tensor: Tensor) -> bool:
    """TFLM's ``needs_allocating``: no constant data, not a variable, and not empty."""
    has_data = tensor.data is not None and len(tensor.data) > 0
    return not has_data and not tensor.is_variable and tensor.nbytes != 0


def tensor_scopes(graph: Subgraph) -> dict[int, tuple[int, int]]:
    """First and last allocation scope of every tensor TFLM marks, by tensor index."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def created(t: int, scope: int) -> None:
        first[t] = last[t] = scope

    for t in (*graph.inputs, *graph.outputs):
        created(t, 0)
    scope = 0
    for op in graph.operators:
        scope += 1
        for t in op.outputs:
            created(t, scope)
        for t in (*op.inputs, *op.outputs):
            if t >= 0:
                first.setdefault(t, UNINITIALIZED)
                last[t] = scope
    for t in graph.outputs:
        last[t] = scope
    return {t: (first[t], last[t]) for t in first}


def arena_buffers(graph: Subgraph, scratch: ScratchRule | None = None,
                  offline: Sequence[int] | None = None) -> list[ArenaBuffer]:
    """The buffers TFLM adds to its planner, in the order it adds them.

    Args:
        graph: the subgraph to plan.
        scratch: kernel rule giving the scratch buffer sizes an operator requests.
        offline: per-tensor offsets from ``OfflineMemoryAllocation`` metadata (-1 = online).
    """
    scopes = tensor_scopes(graph)
    buffers = []
    for tensor in graph.tensors:
        if not needs_planning(tensor):
            continue
        first, last = scopes.get(tensor.index, (UNINITIALIZED, UNINITIALIZED))
        fixed = offline[tensor.index] if offline is not None else -1
        request = BufferRequest(align_up(tensor.nbytes), first, last,
                                fixed if fixed >= 0 else None)
        buffers.append(ArenaBuffer(tensor.name, tensor.index, -1, tensor.nbytes, request))
    if scratch is not None:
        for op in graph.operators:
            for k, size in enumerate(scratch(op, graph.tensors)):
                scope = op.index + 1
                buffers.append(ArenaBuffer(f"{op.opcode}#{op.index} scratch {k}", -1, op.index,
                                           size, BufferRequest(align_up(size), scope, scope)))
    return buffers


def read_offline_offsets(model: Model) -> list[int] | None:
    """Per-tensor offsets from the model's ``OfflineMemoryAllocation`` metadata, if any.

    Raises:
        ExportError: the metadata is malformed or not for a single subgraph.
    """
    raw = model.metadata.get(METADATA_NAME)
    if raw is None:
        return None
    words = np.frombuffer(bytes(raw)[: len(raw) // 4 * 4], dtype="<i4")
    if (len(words) < 3 or words[1] != 1 or len(words) != 3 + int(words[2])
            or int(words[2]) != len(model.main.tensors)):
        raise ExportError(f"{model.source}: malformed {METADATA_NAME} metadata (expected "
                          f"[version, 1, {len(model.main.tensors)}, offsets...])")
    return [int(w) for w in words[3:]]
