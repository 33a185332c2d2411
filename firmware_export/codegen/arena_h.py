"""``arena.h`` / ``arena.cc``: ``kTensorArenaSize`` with its breakdown, and the arena itself."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_export.codegen.render import Code, comment_text, render
from firmware_export.plan.arena import ArenaPlan


@dataclass(frozen=True)
class ArenaValues:
    """The arena plan as the header shows it: plain numbers and names."""

    size: int
    minimum: int
    margin: int
    pointer_size: int
    kernels: str
    head: int
    tail: int
    lower_bound: int
    n_tensors: int
    n_scratch: int
    offline: bool
    parts: tuple[tuple[str, int], ...]  # the tail's non-empty parts
    estimated_ops: tuple[str, ...]


def arena_values(plan: ArenaPlan) -> ArenaValues:
    """The plain values of ``plan`` that ``arena.h`` shows."""
    memory = plan.plan
    n_scratch = sum(1 for b in memory.buffers if b.tensor < 0)
    return ArenaValues(
        size=plan.size, minimum=plan.minimum, margin=plan.margin,
        pointer_size=plan.pointer_size, kernels=plan.kernels, head=memory.head,
        tail=plan.tail.total, lower_bound=memory.lower_bound,
        n_tensors=len(memory.buffers) - n_scratch, n_scratch=n_scratch, offline=memory.offline,
        parts=tuple((name, size) for name, size in plan.tail.parts.items() if size),
        estimated_ops=tuple(plan.tail.estimated_ops))


def arena_h(arena: ArenaValues, model_file: str, board: str) -> str:
    """The header: the size, each part as a comment, and the arena's declaration."""
    parts = "\n".join(f"//       {name:<26} {size:>10,} B" for name, size in arena.parts)
    estimated = (f"\n// Estimated (no measured kernel data): "
                 f"{', '.join(comment_text(op) for op in arena.estimated_ops)}"
                 if arena.estimated_ops else "")
    placement = "offline plan in the model" if arena.offline else "TFLM greedy planner"
    return render("arena.h.in", model_file=model_file, board=board,
                  pointer_size=arena.pointer_size, kernels=arena.kernels,
                  head=Code(f"{arena.head:>10,}"), n_tensors=arena.n_tensors,
                  n_scratch=arena.n_scratch, placement=Code(placement),
                  lower_bound=arena.lower_bound, tail=Code(f"{arena.tail:>10,}"),
                  parts=Code(parts), minimum=arena.minimum, margin=arena.margin,
                  estimated=Code(estimated), size=arena.size)


def arena_cc() -> str:
    return render("arena.cc.in")
