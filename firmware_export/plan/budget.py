"""Does the model fit the board? RAM for the arena, flash for the model data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.boards import BoardProfile, McuSpec
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

    @property
    def ram_left(self) -> int:
        return self.ram_for_arena - self.arena

    @property
    def flash_left(self) -> int:
        return self.flash_for_model - self.model_bytes

    @property
    def fits(self) -> bool:
        return self.ram_left >= 0 and self.flash_left >= 0

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "arena": self.arena, "ram_for_arena": self.ram_for_arena,
                "ram_left": self.ram_left, "model_bytes": self.model_bytes,
                "flash_for_model": self.flash_for_model, "flash_left": self.flash_left}


def mcu_spec(board: BoardProfile) -> McuSpec:
    if board.mcu is None:
        raise ExportError(f"board {board.name!r} is not a microcontroller board")
    return board.mcu


def budget_for(board: BoardProfile, arena: ArenaPlan, model_bytes: int) -> Budget:
    spec = mcu_spec(board)
    return Budget(board.name, arena.size, spec.ram_for_arena, model_bytes, spec.flash_for_model)


def suggestion(ram: int, pointer_size: int) -> str:
    """Which MobileNetV2 would fit ``ram`` bytes of arena, from the planner."""
    best = largest_fitting(ram, pointer_size)
    if best is not None:
        return (f"the largest MobileNetV2 that fits is width {best.width:g} at "
                f"{best.resolution}x{best.resolution} (arena about {best.total:,} B)")
    smallest = mobilenet_v2_arena(0.35, 96, pointer_size)
    return (f"no MobileNetV2 fits: even width 0.35 at 96x96 needs about {smallest.total:,} B; "
            "use a smaller network (e.g. MobileNetV1 0.25) or a board with more RAM")


def check_budget(board: BoardProfile, arena: ArenaPlan, model_bytes: int) -> Budget:
    """The budget, or an error that says by how much the model misses and what would fit.

    Raises:
        BudgetError: the arena or the model data does not fit.
    """
    budget = budget_for(board, arena, model_bytes)
    if budget.ram_left < 0:
        raise BudgetError(
            f"the tensor arena needs {budget.arena:,} B but {board.name} has "
            f"{budget.ram_for_arena:,} B of RAM for it: {-budget.ram_left:,} B too many; "
            f"{suggestion(budget.ram_for_arena, arena.pointer_size)}")
    if budget.flash_left < 0:
        raise BudgetError(
            f"the model data is {model_bytes:,} B but {board.name} has "
            f"{budget.flash_for_model:,} B of flash for it: {-budget.flash_left:,} B too many; "
            "quantize it to int8 or "
            "choose a board with more flash")
    return budget
