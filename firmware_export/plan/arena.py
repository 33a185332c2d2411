"""``kTensorArenaSize``: the planned head + TFLM's tail + a stated margin, with the parts shown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.model.types import Model
from firmware_export.plan.abi import Abi, default_abi, get_abi
from firmware_export.plan.kernels import scratch_rule
from firmware_export.plan.lifetimes import ArenaBuffer, arena_buffers, read_offline_offsets
from firmware_export.plan.planner import (
    ARENA_ALIGNMENT,
    GreedyMemoryPlanner,
    align_up,
    find_overlaps,
    lower_bound,
)
from firmware_export.plan.tail import Tail, planning_temp, tail_size

DEFAULT_MARGIN = 256  # bytes; covers arena-start alignment and allocator differences


@dataclass(frozen=True)
class MemoryPlan:
    """Where every planned buffer goes, and what it costs."""

    buffers: tuple[ArenaBuffer, ...]
    offsets: tuple[int, ...]
    head: int
    lower_bound: int

    @property
    def offline(self) -> bool:
        return any(b.request.offline_offset is not None for b in self.buffers)


@dataclass(frozen=True)
class ArenaPlan:
    """The arena size for one model on one pointer size / kernel set."""

    plan: MemoryPlan
    tail: Tail
    planning_temp: int
    minimum: int  # what TFLM needs, as predicted
    margin: int
    size: int  # kTensorArenaSize
    pointer_size: int
    kernels: str
    abi: str = "x86-64"

    def breakdown(self) -> dict[str, Any]:
        return {
            "head": self.plan.head,
            "head_lower_bound": self.plan.lower_bound,
            "offline_plan": self.plan.offline,
            "tail": self.tail.total,
            "tail_parts": dict(self.tail.parts),
            "planning_temp": self.planning_temp,
            "minimum": self.minimum,
            "margin": self.margin,
            "arena_size": self.size,
            "pointer_size": self.pointer_size,
            "kernels": self.kernels,
            "abi": self.abi,
            "estimated_ops": list(self.tail.estimated_ops),
        }


def plan_memory(model: Model, kernels: str = "reference",
                offline: Sequence[int] | None = None) -> MemoryPlan:
    """TFLM's greedy placement of the main subgraph's tensors and scratch buffers.

    ``offline`` defaults to the model's own ``OfflineMemoryAllocation`` metadata, as in TFLM.

    Raises:
        ValueError: the placement overlaps (only possible with a bad offline plan).
    """
    if offline is None:
        offline = read_offline_offsets(model)
    buffers = arena_buffers(model.main, scratch_rule(kernels), offline)
    planner = GreedyMemoryPlanner()
    for b in buffers:
        planner.add_buffer(b.request.size, b.request.first_used, b.request.last_used,
                           b.request.offline_offset)
    offsets = planner.offsets()
    requests = [b.request for b in buffers]
    clashes = find_overlaps(requests, offsets)
    if clashes:
        i, j = clashes[0]
        raise ValueError(f"memory plan overlaps: {buffers[i].name!r} and {buffers[j].name!r}")
    return MemoryPlan(tuple(buffers), tuple(offsets), planner.max_size(), lower_bound(requests))


def plan_arena(model: Model, pointer_size: int = 8, kernels: str = "reference",
               margin: int = DEFAULT_MARGIN, offline: Sequence[int] | None = None,
               abi: str | Abi | None = None) -> ArenaPlan:
    """Predict TFLM's arena for ``model`` and size ``kTensorArenaSize`` from it.

    Args:
        model: a validated model.
        pointer_size: the target's pointer size (8 for the x86-64 host build).
        kernels: ``reference``, ``cmsis-nn`` or ``esp-nn`` (decides scratch buffers, op data).
        margin: bytes added on top of the prediction.
        offline: per-tensor offsets of an offline plan (-1 = let TFLM place it).
        abi: the compiler ABI (:mod:`firmware_export.plan.abi`); by default the one a
            firmware with this pointer size is built with (``arm-eabi`` for 4, ``x86-64`` for 8).
    """
    layout = abi if isinstance(abi, Abi) else get_abi(abi) if abi else default_abi(pointer_size)
    plan = plan_memory(model, kernels, offline)
    graph = model.main
    n_scratch = sum(1 for b in plan.buffers if b.tensor < 0)
    tail = tail_size(graph, len(model.subgraphs), layout, kernels, n_scratch)
    temp = planning_temp(len(graph.tensors), n_scratch, len(plan.buffers), len(model.subgraphs),
                         layout)
    minimum = align_up(max(plan.head + tail.total, temp + tail.before_io), ARENA_ALIGNMENT)
    size = align_up(minimum + margin, ARENA_ALIGNMENT)
    return ArenaPlan(plan, tail, temp, minimum, size - minimum, size, layout.pointer_size,
                     kernels, layout.name)
