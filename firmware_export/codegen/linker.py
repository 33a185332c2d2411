"""A linker script from a board's flash map, for the link check of model data + arena.

FLASH is :meth:`edge.boards.McuSpec.model_region` (where ``model_data.cc`` links, after the
firmware's part: the model part with ``--model-slot``, the model and slot parts without), RAM
the part of the arena region left after firmware, stack and heap (``ram_for_arena``), so a
model that links here fits beside the firmware and never reaches a model slot.
"""

from __future__ import annotations

from edge.boards import McuSpec
from firmware_export.codegen.render import Code, render


def flash_map_text(spec: McuSpec) -> str:
    """One line per part: ``kind [address, end) size``, for comments and docs."""
    return "; ".join(f"{part.kind} {part.address:#010x}-{part.end:#010x} ({part.size:,} B)"
                     for part in spec.flash_map)


def linker_script(spec: McuSpec, board: str, model_slot: bool, fallback: bool = True) -> str:
    """The script for firmware built with (``model_slot``) or without ``--model-slot``, with or
    without an embedded ``fallback`` model."""
    ram = spec.region(spec.arena_region)
    model = spec.model_region(model_slot, fallback)
    slot = spec.slot_region(model_slot, fallback)
    slot_text = ("none (exported without --model-slot: the model links into the model and slot"
                 " parts)" if slot is None else f"{slot.address:#010x}, {slot.length:,} B")
    return render("board.ld.in", board=board, flash_map=Code(flash_map_text(spec)),
                  flash_start=model.address, flash_length=model.size,
                  ram_start=ram.origin + spec.reserved_ram, ram_length=spec.ram_for_arena,
                  slot=Code(slot_text))
