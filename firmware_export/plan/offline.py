"""Offline memory plans: when a placement beats TFLM's greedy one, store it in the model.

TFLM reads ``OfflineMemoryAllocation`` metadata (``micro_allocation_info.cc``,
``docs/memory_management.md``): a buffer of int32 words ``[version=1, subgraphs, n, offset_0 ..
offset_{n-1}]``, one offset per tensor of the (single) subgraph, measured from the start of the
arena head, ``-1`` for tensors TFLM should place itself. Scratch buffers are always placed online,
around the fixed tensors, exactly as :func:`firmware_export.plan.arena.plan_memory` reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import ExportError
from edge.model.types import Model
from firmware_export.plan.arena import MemoryPlan, plan_memory
from firmware_export.plan.lifetimes import METADATA_NAME, ONLINE, read_offline_offsets
from firmware_export.plan.planner import ARENA_ALIGNMENT, BufferRequest, find_overlaps

VERSION = 1
__all__ = ["METADATA_NAME", "ONLINE", "OfflinePlan", "check_offline_plan", "find_offline_plan",
           "first_fit", "metadata_words", "read_offline_offsets"]

Order = Callable[[Sequence[BufferRequest]], list[int]]


def _span(b: BufferRequest) -> int:
    return b.last_used - b.first_used + 1


# Orderings tried with the same first-fit placement; one table, not an if-chain.
ORDERS: dict[str, Order] = {
    "first use": lambda bs: sorted(range(len(bs)), key=lambda i: (bs[i].first_used, -bs[i].size)),
    "lifetime": lambda bs: sorted(range(len(bs)), key=lambda i: (-_span(bs[i]), -bs[i].size)),
    "area": lambda bs: sorted(range(len(bs)), key=lambda i: -bs[i].size * _span(bs[i])),
    "last use": lambda bs: sorted(range(len(bs)), key=lambda i: (-bs[i].last_used, -bs[i].size)),
}


@dataclass(frozen=True)
class OfflinePlan:
    """Per-tensor offsets and what they bring."""

    strategy: str
    offsets: tuple[int, ...]  # one per tensor of the subgraph, -1 = online
    head: int  # head size TFLM ends up with (scratch buffers placed online)
    greedy_head: int

    @property
    def saving(self) -> int:
        return self.greedy_head - self.head


def first_fit(buffers: Sequence[BufferRequest], order: Sequence[int]) -> list[int]:
    """Place ``buffers`` in ``order``, each at the lowest offset free for its lifetime."""
    offsets = [0] * len(buffers)
    placed: list[int] = []
    for index in order:
        wanted, candidate = buffers[index], 0
        for other in sorted(placed, key=lambda k: offsets[k]):
            if not wanted.overlaps_in_time(buffers[other]):
                continue
            if offsets[other] - candidate >= wanted.size:
                break
            candidate = max(candidate, offsets[other] + buffers[other].size)
        offsets[index] = candidate
        placed.append(index)
    return offsets


def find_offline_plan(model: Model, kernels: str = "reference") -> OfflinePlan | None:
    """The best of a few orderings, if it beats TFLM's greedy head; else None.

    Raises:
        ExportError: the model has more than one subgraph (TFLM's format covers them, but this
            exporter only plans single-subgraph models).
    """
    if len(model.subgraphs) != 1:
        raise ExportError(f"{model.source}: offline plans are only written for single-subgraph "
                          f"models (this one has {len(model.subgraphs)}); use --offline-plan off")
    greedy = plan_memory(model, kernels, offline=[ONLINE] * len(model.main.tensors))
    tensors = [b for b in greedy.buffers if b.tensor >= 0]
    requests = [b.request for b in tensors]
    best: OfflinePlan | None = None
    for name, order in ORDERS.items():
        placed = first_fit(requests, order(requests))
        offsets = [ONLINE] * len(model.main.tensors)
        for buffer, offset in zip(tensors, placed, strict=True):
            offsets[buffer.tensor] = offset
        head = plan_memory(model, kernels, offsets).head
        if head < greedy.head and (best is None or head < best.head):
            best = OfflinePlan(name, tuple(offsets), head, greedy.head)
    return best


def check_offline_plan(plan: MemoryPlan) -> None:
    """Offsets 16-byte aligned and no two live buffers overlapping.

    Raises:
        ExportError: naming the first offending buffer.
    """
    for buffer, offset in zip(plan.buffers, plan.offsets, strict=True):
        if offset % ARENA_ALIGNMENT:
            raise ExportError(f"offline plan puts {buffer.name!r} at {offset}, not 16-aligned")
    clashes = find_overlaps([b.request for b in plan.buffers], plan.offsets)
    if clashes:
        i, j = clashes[0]
        raise ExportError(f"offline plan overlaps {plan.buffers[i].name!r} and "
                          f"{plan.buffers[j].name!r}")


def metadata_words(offsets: Sequence[int]) -> bytes:
    """The metadata buffer: little-endian int32 ``[1, 1, n, offsets...]``."""
    return np.asarray([VERSION, 1, len(offsets), *offsets], dtype="<i4").tobytes()
