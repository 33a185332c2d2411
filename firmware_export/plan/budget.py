"""Does the model fit the board? RAM for the arena, flash for the model data and the slot.

Flash comes from the board's flash map, in which every byte belongs to one part, through
:meth:`edge.boards.McuSpec.model_region` (the linker script's FLASH) and ``slot_region``: with
``--model-slot`` (a slot image is given) the embedded model is checked against the ``model``
part and the image against the ``slot`` part; without it the embedded model gets both parts and
there is no slot. The firmware's own part is never counted for either.

A model that does not fit is refused with what would actually help: quantizing only when the
model still has float weights (and by how much that would shrink it), the other layout when it
fits, the boards whose flash and RAM hold it, a smaller model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.boards import BoardProfile, McuSpec, load_boards
from edge.errors import BudgetError, ExportError
from firmware_export.plan.arena import ArenaPlan
from firmware_export.plan.mobilenet import largest_fitting, mobilenet_v2_arena


@dataclass(frozen=True)
class Budget:
    board: str
    arena: int
    ram_for_arena: int
    model_bytes: int
    flash_for_model: int
    slot_image_bytes: int | None = None  # with --model-slot
    slot_length: int | None = None
    model_slot: bool = False  # the layout: firmware built with --model-slot
    fallback: bool = True  # with --model-slot: an embedded fallback model (--fallback embedded)

    @property
    def ram_left(self) -> int:
        return self.ram_for_arena - self.arena

    @property
    def flash_left(self) -> int:
        return self.flash_for_model - self.model_bytes

    @property
    def slot_left(self) -> int | None:
        if self.slot_image_bytes is None or self.slot_length is None:
            return None
        return self.slot_length - self.slot_image_bytes

    @property
    def fits(self) -> bool:
        slot_left = self.slot_left
        return self.ram_left >= 0 and self.flash_left >= 0 and (slot_left is None
                                                                or slot_left >= 0)

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "arena": self.arena, "ram_for_arena": self.ram_for_arena,
                "ram_left": self.ram_left, "model_bytes": self.model_bytes,
                "flash_for_model": self.flash_for_model, "flash_left": self.flash_left,
                "slot_image_bytes": self.slot_image_bytes, "slot_length": self.slot_length,
                "slot_left": self.slot_left, "model_slot": self.model_slot,
                "fallback": ("embedded" if self.fallback else "none") if self.model_slot
                else None}


def mcu_spec(board: BoardProfile) -> McuSpec:
    if board.mcu is None:
        raise ExportError(f"board {board.name!r} is not a microcontroller board")
    return board.mcu


def budget_for(board: BoardProfile, arena: ArenaPlan, model_bytes: int,
               slot_image: bytes | None = None, fallback: bool = True) -> Budget:
    """The budget of firmware built with ``--model-slot`` (``slot_image`` given) or without;
    with the slot and no ``fallback``, no model is embedded (``model_bytes`` count 0)."""
    spec = mcu_spec(board)
    model_slot = slot_image is not None
    fallback = fallback or not model_slot
    slot = spec.slot_region(model_slot, fallback)
    return Budget(board.name, arena.size, spec.ram_for_arena, model_bytes if fallback else 0,
                  spec.model_region(model_slot, fallback).size,
                  None if slot_image is None else len(slot_image),
                  None if slot is None else slot.length, model_slot, fallback)


def suggestion(ram: int, pointer_size: int) -> str:
    """Which MobileNetV2 would fit ``ram`` bytes of arena, from the planner."""
    best = largest_fitting(ram, pointer_size)
    if best is not None:
        return (f"the largest MobileNetV2 that fits is width {best.width:g} at "
                f"{best.resolution}x{best.resolution} (arena about {best.total:,} B)")
    smallest = mobilenet_v2_arena(0.35, 96, pointer_size)
    return (f"no MobileNetV2 fits: even width 0.35 at 96x96 needs about {smallest.total:,} B; "
            "use a smaller network (e.g. MobileNetV1 0.25) or a board with more RAM")


def check_arena_fits(board: BoardProfile, arena_size: int, pointer_size: int,
                     helps: str | None = None) -> None:
    """Refuse an arena larger than the RAM the board leaves for it, saying what would fit.

    Args:
        helps: what would make this very model fit, named first (e.g. ``--patch auto`` with
            the arena it gives).

    Raises:
        BudgetError: by how many bytes, and the largest MobileNetV2 that fits.
    """
    ram = mcu_spec(board).ram_for_arena
    if arena_size > ram:
        first = f"{helps}; or " if helps else ""
        raise BudgetError(
            f"the tensor arena needs {arena_size:,} B but {board.name} has {ram:,} B of RAM "
            f"for it: {arena_size - ram:,} B too many; {first}{suggestion(ram, pointer_size)}")


def check_budget(board: BoardProfile, arena: ArenaPlan, model_bytes: int,
                 slot_image: bytes | None = None, quantize_saves: int = 0,
                 fallback: bool = True, arena_help: str | None = None) -> Budget:
    """The budget, or an error that says by how much the model misses and what would help.

    Args:
        quantize_saves: bytes int8 quantization would take off the model (its float
            weights); 0 for a model already quantized.
        fallback: with ``slot_image``, embed the model as the fallback (``--fallback
            embedded``); False: the slot takes the model part too (``--fallback none``).
        arena_help: what would make this model's arena fit, when it does not (``--patch
            auto`` with its arena).

    Raises:
        BudgetError: the arena, the model data or the slot image does not fit.
    """
    budget = budget_for(board, arena, model_bytes, slot_image, fallback)
    check_arena_fits(board, arena.size, arena.pointer_size, arena_help)
    if budget.flash_left < 0:
        helps = what_helps(board, budget, -budget.flash_left, quantize_saves,
                           lambda spec: (spec.model_slot is not None or not budget.model_slot)
                           and spec.model_region(budget.model_slot).size >= model_bytes,
                           _no_fallback_help(board, budget, slot_image))
        raise BudgetError(
            f"the model data is {model_bytes:,} B but {board.name} has "
            f"{budget.flash_for_model:,} B of flash for it{_layout(board, budget)}: "
            f"{-budget.flash_left:,} B too many; {helps}")
    _check_slot(board, budget, quantize_saves, slot_image)
    return budget


def float_weight_savings(constants: list[tuple[str, int]]) -> int:
    """Bytes int8 would save on constant tensors given as (dtype, byte count)."""
    shrink = {"float32": 3 / 4, "float16": 1 / 2, "float64": 7 / 8}
    return int(sum(size * shrink.get(dtype, 0) for dtype, size in constants))


def _no_fallback_help(board: BoardProfile, budget: Budget, slot_image: bytes | None
                      ) -> str | None:
    """``--fallback none`` when the slot image would fit the slot it then gets."""
    if slot_image is None or not budget.fallback:
        return None
    whole = mcu_spec(board).slot_region(True, fallback=False)
    if whole is None or len(slot_image) > whole.length:
        return None
    return (f"--fallback none (no embedded model; the slot then gets {whole.length:,} B, "
            "and a board with an invalid image waits for a valid one)")


def what_helps(board: BoardProfile, budget: Budget, excess: int, quantize_saves: int,
               holds: Callable[[McuSpec], bool], layout_help: str | None = None) -> str:
    """What would make a model that misses by ``excess`` bytes fit, most direct first.

    Args:
        holds: ``holds(spec) -> bool``: whether another board's flash holds the model (or its
            image) in the same layout.
        layout_help: another layout of this board that fits, when there is one.
    """
    helps = [layout_help] if layout_help else []
    if quantize_saves >= excess:  # else quantizing alone would not do it: not named
        helps.append(f"quantize it to int8 (edge-model quantize; its float weights would "
                     f"shrink by about {quantize_saves:,} B)")
    boards = [b.name for b in load_boards().values()
              if b.mcu is not None and b.name != board.name and holds(b.mcu)
              and b.mcu.ram_for_arena >= budget.arena]
    helps.append("a smaller model (fewer channels or a lower input resolution)")
    if boards:
        helps.append(f"a board with room for it: {', '.join(sorted(boards))}")
    return "; or ".join(helps)


def _layout(board: BoardProfile, budget: Budget) -> str:
    """Which layout of the flash map the budget used, when the other one would fit."""
    if not budget.model_slot:
        return ""
    whole = mcu_spec(board).model_region(slot=False).size
    if budget.model_bytes > whole:
        return " with --model-slot"
    return (f" with --model-slot (without it the model would get {whole:,} B: the model and "
            "slot parts)")


def _check_slot(board: BoardProfile, budget: Budget, quantize_saves: int = 0,
                slot_image: bytes | None = None) -> None:
    if budget.slot_image_bytes is None:
        return
    if budget.slot_length is None:
        raise BudgetError(f"{board.name} has no slot part in its flash map ({board.source}); "
                          "export without --model-slot")
    left = budget.slot_left
    if left is not None and left < 0:
        image = budget.slot_image_bytes
        helps = what_helps(board, budget, -left, quantize_saves,
                           lambda spec: spec.model_slot is not None
                           and spec.model_slot.length >= image,
                           _no_fallback_help(board, budget, slot_image))
        raise BudgetError(
            f"the model image is {budget.slot_image_bytes:,} B but the model slot of "
            f"{board.name} holds {budget.slot_length:,} B: {-left:,} B too many; {helps}")
