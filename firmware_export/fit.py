"""Does a model fit a microcontroller board, and where: the arena in RAM, the model in flash.

The same steps as ``edge-export`` (validate, offline plan, arena plan, budget) without writing a
project, so ``edge-inspect MODEL --board B`` and ``edge-export`` can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.boards import BoardProfile
from edge.model.types import Model
from firmware_export.export import apply_offline_plan, check_exportable
from firmware_export.flash.image import build_image
from firmware_export.plan.arena import DEFAULT_MARGIN, ArenaPlan, plan_arena
from firmware_export.plan.budget import Budget, budget_for, mcu_spec, suggestion
from firmware_export.plan.offline import OfflinePlan


@dataclass(frozen=True)
class Placement:
    """One thing the model needs on the board, and the memory it goes into."""

    what: str
    region: str
    origin: int
    need: int
    available: int

    @property
    def left(self) -> int:
        return self.available - self.need

    @property
    def fits(self) -> bool:
        return self.left >= 0

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "region": self.region, "origin": self.origin,
                "need": self.need, "available": self.available, "left": self.left,
                "fits": self.fits}


@dataclass(frozen=True)
class BoardFit:
    """The arena plan, the budget and each placement of one model on one board."""

    board: BoardProfile
    arena: ArenaPlan
    budget: Budget
    offline: OfflinePlan | None
    placements: tuple[Placement, ...]

    @property
    def fits(self) -> bool:
        """Whether the default export (model built in, no slot) fits."""
        return all(p.fits for p in self.placements[:2])

    @property
    def fits_with_slot(self) -> bool | None:
        """Whether an export with ``--model-slot`` fits (None: the board has no slot)."""
        return all(p.fits for p in self.placements) if len(self.placements) > 2 else None

    @property
    def advice(self) -> str | None:
        """What would fit instead, when the arena does not."""
        if self.placements[0].fits:
            return None
        return suggestion(self.placements[0].available, self.arena.pointer_size)

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board.name, "fits": self.fits,
                "fits_with_model_slot": self.fits_with_slot,
                "arena": self.arena.breakdown(), "budget": self.budget.to_dict(),
                "placements": [p.to_dict() for p in self.placements],
                "offline_plan_saving": self.offline.saving if self.offline else None,
                "advice": self.advice}


def board_fit(model: Model, board: BoardProfile, margin: int = DEFAULT_MARGIN,
              offline_plan: str = "auto") -> BoardFit:
    """Plan ``model`` on ``board`` as ``edge-export`` would, without writing anything.

    Raises:
        ExportError: not a microcontroller board, or a model TFLite Micro cannot run.
    """
    spec = mcu_spec(board)
    check_exportable(model)
    planned, offline = apply_offline_plan(model, spec.kernels, offline_plan)
    arena = plan_arena(planned, spec.pointer_size, spec.kernels, margin)
    size = len(planned.content)
    budget = budget_for(board, arena, size)  # the default export: no slot
    ram, region = spec.region(spec.arena_region), spec.model_region(slot=False)
    placements = [
        Placement("tensor arena", ram.name, ram.origin, arena.size, budget.ram_for_arena),
        Placement("model data (built in)", f"flash {region.name}", region.address, size,
                  budget.flash_for_model),
    ]
    slot = spec.slot_region(slot=True)
    if slot is not None:  # firmware exported with --model-slot, updated by edge-flash
        image = build_image(planned.content, model.labels or (), arena.size, board.name)
        with_slot = budget_for(board, arena, size, image)
        part = spec.model_region(slot=True)
        placements += [
            Placement("model data (--model-slot)", f"flash {part.name}", part.address, size,
                      with_slot.flash_for_model),
            Placement("model image (edge-flash)", "flash slot", slot.address, len(image),
                      slot.length),
        ]
    return BoardFit(board, arena, budget, offline, tuple(placements))
