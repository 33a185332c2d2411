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
    patch: str | None = None  # the export needs --patch auto (auto's grid), None: untiled
    layouts: tuple[dict[str, Any], ...] = ()  # firmware layouts and whether the model fits

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "resolution": self.resolution, "reason": self.reason,
                "predicted_arena": self.arena, "predicted_model_bytes": self.model_bytes,
                "patch": self.patch, "layouts": list(self.layouts)}


def choose_size(board: BoardProfile, classes: int, patch: bool = True) -> SizeChoice:
    """The largest MobileNetV2 that fits ``board`` with ``classes`` outputs.

    Args:
        patch: also consider exporting with ``--patch auto`` (the first stages tiled), which
            lets larger inputs fit; each member tried that way is planned as the export plans
            it (seconds each).

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
        largest_patched,
        layouts,
        mobilenet_v2_model_bytes,
    )

    ram, flash = board.mcu.ram_for_arena, board.mcu.flash_for_model
    pointer = board.mcu.pointer_size
    best = largest_fitting(ram, pointer, flash=flash, classes=classes)
    members = sorted(family(pointer, classes), key=lambda f: f.size_key)
    tiled = largest_patched(board, classes, best.size_key if best else (0.0, 0.0)) if patch \
        else None
    if best is None and tiled is None:
        small = members[0]
        short = []
        if small.total > ram:
            short.append(f"an arena of about {small.total:,} B ({ram:,} B of RAM left for it"
                         + (", also with --patch auto)" if patch else ")"))
        flash_needed = mobilenet_v2_model_bytes(small.width, classes)
        if flash_needed > flash:
            short.append(f"about {flash_needed:,} B of flash for the model ({flash:,} B left)")
        raise TrainingError(f"no MobileNetV2 fits {board.name}: even {small.label} needs "
                            f"{' and '.join(short)}; choose a board with more memory")
    if tiled is not None:
        width, resolution, arena, label = tiled.width, tiled.resolution, tiled.patched, tiled.label
        size = tiled.model_bytes
        reason = (f"{label} is the largest MobileNetV2 that fits {board.name} when exported "
                  f"with --patch auto (tiles {tiled.grid}): predicted arena {arena:,} B of "
                  f"{ram:,} B RAM (untiled {tiled.untiled:,} B), int8 model {size:,} B of "
                  f"{flash:,} B flash")
        if best is not None:
            reason += f"; without --patch the largest is {best.label}"
    else:
        assert best is not None
        width, resolution, arena, label = best.width, best.resolution, best.total, best.label
        size = mobilenet_v2_model_bytes(best.width, classes)
        reason = (f"{label} is the largest MobileNetV2 that fits {board.name}: predicted arena "
                  f"{arena:,} B of {ram:,} B RAM, int8 model {size:,} B of {flash:,} B flash")
    key = (width * resolution ** 2, width)
    bigger = [f for f in members if f.size_key > key]
    if bigger:
        nxt = bigger[0]
        nxt_size = mobilenet_v2_model_bytes(nxt.width, classes)
        short = []
        if nxt.total > ram:
            short.append(f"an arena of {nxt.total:,} B" + (
                " untiled (and more than fits with --patch auto)"
                if patch and nxt_size <= flash else ""))
        if nxt_size > flash:
            short.append(f"{nxt_size:,} B of flash")
        needs = " and ".join(short) or "more than fits"
        reason += f"; the next larger, {nxt.label}, needs {needs}"
    found = layouts(board, size, classes)
    fit = [f.name for f in found if f.fits]
    miss = [f"{f.name} ({f.why})" for f in found if not f.fits]
    reason += (f". Firmware layouts it fits: {', '.join(fit) or 'none'}"
               + (f"; not: {'; '.join(miss)}" if miss else ""))
    return SizeChoice(width, resolution, reason, arena, size,
                      tiled.grid if tiled is not None else None,
                      tuple(f.to_dict() for f in found))
