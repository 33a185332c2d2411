"""What TFLite Micro allocates at the tail of the arena, beside the planned tensors.

The tail grows down from the end of the arena, each allocation aligned down to its own
alignment, in the order TFLM makes them (``micro_allocator.cc``, ``micro_interpreter.cc``):

1. allocator objects (arena allocator, memory planner, micro allocator), subgraph table;
2. one ``TfLiteEvalTensor`` per tensor and one ``NodeAndRegistration`` per operator;
3. per operator, in order: parsed builtin options, then (all ``Init``) op data, then (all
   ``Prepare``) per-channel quantization multipliers/shifts and other persistent buffers;
4. scratch buffer handles and variable tensors;
5. after planning, persistent ``TfLiteTensor`` structs (+ quantization) for graph inputs and
   outputs.

Sizes are those of the x86-64 ``tflite-micro`` package (which uses the recording allocator, a
little larger than the plain one) scaled to the board's pointer size; see
:mod:`firmware_export.plan.kernels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.model.types import Subgraph, Tensor
from firmware_export.plan.kernels import Struct, kernel_cost
from firmware_export.plan.planner import ARENA_ALIGNMENT, align_up

# Allocator objects of the pip build: RecordingSingleArenaBufferAllocator, GreedyMemoryPlanner,
# RecordingMicroAllocator (mostly pointers, so halved for 32-bit boards).
ALLOCATOR_OBJECTS = (Struct(104, 8, 13), Struct(72, 8, 9), Struct(272, 8, 34))
SUBGRAPH_ALLOCATIONS = Struct(16, 8, 2)
BUILTIN_DATA_ALLOCATOR = Struct(24, 8, 3)
EVAL_TENSOR = Struct(24, 8, 2)
NODE_AND_REGISTRATION = Struct(64, 8, 7)
PERSISTENT_TENSOR = Struct(64, 8, 4)
AFFINE_QUANTIZATION = Struct(24, 8, 2)
ALLOCATION_INFO = Struct(32, 8, 2)
PLANNER_BYTES_PER_BUFFER = 40  # requirements, two sort arrays, list entry, offset

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

    def struct(self, category: str, struct: Struct, pointer_size: int, count: int = 1) -> None:
        self.allocate(category, struct.size(pointer_size) * count, struct.align(pointer_size))

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


def tail_size(graph: Subgraph, n_subgraphs: int, pointer_size: int, n_scratch: int) -> Tail:
    """Simulate the tail for ``graph`` (the model's main subgraph) on a board.

    Args:
        graph: the main subgraph.
        n_subgraphs: subgraphs in the model.
        pointer_size: 4 for Cortex-M / Xtensa / RISC-V, 8 for the x86-64 host build.
        n_scratch: scratch buffers the kernels request (each needs a handle).
    """
    p = pointer_size
    arena = TailAllocator()
    for obj in ALLOCATOR_OBJECTS:
        arena.struct("allocator objects", obj, p)
    arena.struct("allocator objects", SUBGRAPH_ALLOCATIONS, p, n_subgraphs)
    arena.struct("allocator objects", BUILTIN_DATA_ALLOCATOR, p)
    arena.struct("eval tensors", EVAL_TENSOR, p, len(graph.tensors))
    arena.struct("node structs", NODE_AND_REGISTRATION, p, len(graph.operators))
    costs = [kernel_cost(op.opcode) for op in graph.operators]
    for cost in costs:
        arena.struct("builtin options", cost.builtin_data, p)
    for cost in costs:
        arena.allocate("op data", cost.op_data.size(p), ARENA_ALIGNMENT)
    for op, cost in zip(graph.operators, costs, strict=True):
        for size in cost.prepare(op, graph.tensors) if cost.prepare else []:
            arena.allocate("per-channel quantization", size, ARENA_ALIGNMENT)
    arena.allocate("scratch handles", p * n_scratch, p)
    for tensor in graph.tensors:
        if tensor.is_variable:
            arena.allocate("variables", tensor.nbytes, ARENA_ALIGNMENT)
    before_io = arena.used
    for group in (graph.inputs, graph.outputs):
        arena.allocate("I/O tensors", p * len(group), ARENA_ALIGNMENT)
        for index in group:
            _persistent_tensor(arena, graph.tensors[index], p)
    estimated = tuple(sorted({op.opcode for op, c in zip(graph.operators, costs, strict=True)
                              if not c.measured}))
    return Tail(arena.used, before_io, dict(arena.by_category), estimated)


def _persistent_tensor(arena: TailAllocator, tensor: Tensor, pointer_size: int) -> None:
    arena.struct("I/O tensors", PERSISTENT_TENSOR, pointer_size)
    quant = tensor.quantization
    if quant is not None and len(quant.scale) > 0 and len(quant.zero_point) > 0:
        arena.struct("I/O tensors", AFFINE_QUANTIZATION, pointer_size)
        arena.allocate("I/O tensors", 4 + 4 * len(quant.scale), 4)


def planning_temp(n_tensors: int, n_scratch: int, n_buffers: int, n_subgraphs: int,
                  pointer_size: int) -> int:
    """Head bytes TFLM needs while it plans (allocation info + the planner's own arrays)."""
    info = ALLOCATION_INFO.size(pointer_size) * (n_tensors + n_scratch)
    offsets = align_up(pointer_size * n_subgraphs, 8)
    return align_up(offsets + info) + PLANNER_BYTES_PER_BUFFER * n_buffers


def io_tensors(graph: Subgraph) -> Sequence[int]:
    return (*graph.inputs, *graph.outputs)
