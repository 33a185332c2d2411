"""What TFLite Micro allocates at the tail of the arena, beside the planned tensors.

The tail grows down from the end of the arena, each allocation aligned down to its own
alignment, in the order TFLM makes them (``micro_allocator.cc``, ``micro_interpreter.cc``):

1. allocator objects (arena allocator, memory planner, micro allocator), builtin-data
   allocator, subgraph table;
2. one ``TfLiteEvalTensor`` per tensor and one ``NodeAndRegistration`` per operator;
3. per operator, in order: parsed builtin options, then (all ``Init``) op data, then (all
   ``Prepare``) per-channel quantization multipliers/shifts and other persistent buffers;
4. scratch buffer handles and variable tensors;
5. after planning, persistent ``TfLiteTensor`` structs (+ quantization) for graph inputs and
   outputs.

Struct sizes and alignments come from the target's ABI (:mod:`firmware_export.plan.abi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.model.types import Subgraph, Tensor
from firmware_export.plan.abi import Abi
from firmware_export.plan.kernels import UNKNOWN_BUILTIN_DATA, UNKNOWN_OP_DATA, kernel_cost
from firmware_export.plan.planner import ARENA_ALIGNMENT, align_up

PLANNER_BYTES_PER_BUFFER = 40  # requirements, two sort arrays, list entry, offset
MAX_SCRATCH_BUFFERS_PER_OP = 12  # kMaxScratchBuffersPerOp

CATEGORIES = ("allocator objects", "eval tensors", "node structs", "builtin options",
              "op data", "per-channel quantization", "scratch handles", "variables",
              "I/O tensors")


@dataclass
class TailAllocator:
    """Simulates TFLM's downward tail allocation, recording bytes (with padding) by category."""

    end: int = 1 << 40
    tail: int = 1 << 40
    by_category: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))

    def allocate(self, category: str, size: int, alignment: int) -> None:
        if size <= 0:
            return
        before = self.tail
        self.tail = (self.tail - size) // alignment * alignment
        self.by_category[category] += before - self.tail

    def struct(self, category: str, abi: Abi, struct: str, count: int = 1) -> None:
        self.allocate(category, abi.size(struct) * count, abi.align(struct))

    @property
    def used(self) -> int:
        return self.end - self.tail


@dataclass(frozen=True)
class Tail:
    """The tail's size, how much of it exists while planning, and its parts."""

    total: int
    before_io: int
    parts: dict[str, int]
    estimated_ops: tuple[str, ...]


def tail_size(graph: Subgraph, n_subgraphs: int, abi: Abi, kernels: str,
              n_scratch: int) -> Tail:
    """Simulate the tail for ``graph`` (the model's main subgraph) on a target.

    Args:
        graph: the main subgraph.
        n_subgraphs: subgraphs in the model.
        abi: the compiler ABI of the build.
        kernels: ``reference``, ``cmsis-nn`` or ``esp-nn``.
        n_scratch: scratch buffers the kernels request (each needs a handle).
    """
    arena = TailAllocator()
    for obj in abi.allocator_objects:
        arena.struct("allocator objects", abi, obj)
    arena.struct("allocator objects", abi, "MicroBuiltinDataAllocator")
    arena.struct("allocator objects", abi, "SubgraphAllocations", n_subgraphs)
    arena.struct("eval tensors", abi, "TfLiteEvalTensor", len(graph.tensors))
    arena.struct("node structs", abi, "NodeAndRegistration", len(graph.operators))
    costs = [kernel_cost(op.opcode) for op in graph.operators]
    for cost in costs:
        if cost.builtin_data is not None:
            arena.struct("builtin options", abi, cost.builtin_data)
        elif not cost.measured:
            arena.allocate("builtin options", UNKNOWN_BUILTIN_DATA, abi.pointer_size)
    for cost in costs:
        size = cost.op_data_size(abi, kernels) if cost.measured else UNKNOWN_OP_DATA
        arena.allocate("op data", size, ARENA_ALIGNMENT)
    for op, cost in zip(graph.operators, costs, strict=True):
        for size in cost.prepare(op, graph.tensors) if cost.prepare else []:
            arena.allocate("per-channel quantization", size, ARENA_ALIGNMENT)
    arena.struct("scratch handles", abi, "ScratchBufferHandle", n_scratch)
    for tensor in graph.tensors:
        if tensor.is_variable:
            arena.allocate("variables", tensor.nbytes, ARENA_ALIGNMENT)
    before_io = arena.used
    for group in (graph.inputs, graph.outputs):
        arena.allocate("I/O tensors", abi.pointer_size * len(group), ARENA_ALIGNMENT)
        for index in group:
            _persistent_tensor(arena, graph.tensors[index], abi)
    estimated = tuple(sorted({op.opcode for op, c in zip(graph.operators, costs, strict=True)
                              if not c.measured}))
    return Tail(arena.used, before_io, dict(arena.by_category), estimated)


def _persistent_tensor(arena: TailAllocator, tensor: Tensor, abi: Abi) -> None:
    arena.struct("I/O tensors", abi, "TfLiteTensor")
    quant = tensor.quantization
    if quant is not None and len(quant.scale) > 0 and len(quant.zero_point) > 0:
        arena.struct("I/O tensors", abi, "TfLiteAffineQuantization")
        arena.allocate("I/O tensors", 4 + 4 * len(quant.scale), 4)


def planning_temp(n_tensors: int, n_scratch: int, n_buffers: int, n_subgraphs: int,
                  abi: Abi) -> int:
    """Head bytes TFLM needs while it plans: scratch requests, allocation info, planner arrays."""
    requests = align_up(abi.size("ScratchBufferRequest")
                        * (n_scratch + MAX_SCRATCH_BUFFERS_PER_OP))
    info = abi.size("AllocationInfo") * (n_tensors + n_scratch)
    offsets = align_up(abi.pointer_size * n_subgraphs, 8)
    return requests + align_up(offsets + info) + PLANNER_BYTES_PER_BUFFER * n_buffers


def io_tensors(graph: Subgraph) -> Sequence[int]:
    return (*graph.inputs, *graph.outputs)
