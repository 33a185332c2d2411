"""Which MobileNetV2 (width, resolution) to train for a board: ``edge-model train --board``.

For a microcontroller, the largest network of the family whose predicted tensor arena fits the
RAM left for it and whose int8 model fits the flash left for it, predicted by the same code
``edge-export`` uses to plan and check a model (:mod:`firmware_export.plan.fit`). For a
Linux board, which has neither limit, the standard 1.0/224.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.boards import BoardProfile
from edge.errors import TrainingError

LINUX_DEFAULT = (1.0, 224)


@dataclass(frozen=True)
class SizeChoice:
    """A width and resolution, and why."""

    alpha: float
    resolution: int
    reason: str
    arena: int | None = None
    model_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "resolution": self.resolution, "reason": self.reason,
                "predicted_arena": self.arena, "predicted_model_bytes": self.model_bytes}


def choose_size(board: BoardProfile, classes: int) -> SizeChoice:
    """The largest MobileNetV2 that fits ``board`` with ``classes`` outputs.

    Raises:
        TrainingError: not even the smallest one fits the board.
    """
    if board.mcu is None:
        alpha, resolution = LINUX_DEFAULT
        return SizeChoice(alpha, resolution, f"{board.name} is a Linux board without an arena or "
                          f"flash limit: the standard MobileNetV2 {alpha:g}/{resolution}")
    from firmware_export.plan.fit import (
        family,
        largest_fitting,
        mobilenet_v2_model_bytes,
    )

    ram, flash = board.mcu.ram_for_arena, board.mcu.flash_for_model
    pointer = board.mcu.pointer_size
    best = largest_fitting(ram, pointer, flash=flash, classes=classes)
    members = sorted(family(pointer, classes), key=lambda f: f.size_key)
    if best is None:
        small = members[0]
        short = []
        if small.total > ram:
            short.append(f"an arena of about {small.total:,} B ({ram:,} B of RAM left for it)")
        flash_needed = mobilenet_v2_model_bytes(small.width, classes)
        if flash_needed > flash:
            short.append(f"about {flash_needed:,} B of flash for the model ({flash:,} B left)")
        raise TrainingError(f"no MobileNetV2 fits {board.name}: even {small.label} needs "
                            f"{' and '.join(short)}; choose a board with more memory")
    size = mobilenet_v2_model_bytes(best.width, classes)
    reason = (f"{best.label} is the largest MobileNetV2 that fits {board.name}: predicted arena "
              f"{best.total:,} B of {ram:,} B RAM, int8 model {size:,} B of {flash:,} B flash")
    bigger = [f for f in members if f.size_key > best.size_key]
    if bigger:
        nxt = bigger[0]
        nxt_size = mobilenet_v2_model_bytes(nxt.width, classes)
        needs = (f"an arena of {nxt.total:,} B" if nxt.total > ram
                 else f"{nxt_size:,} B of flash")
        reason += f"; the next larger, {nxt.label}, needs {needs}"
    return SizeChoice(best.width, best.resolution, reason, best.total, size)
