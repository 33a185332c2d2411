"""Does a model fit, and where: the one entry point of the memory plan that ``edge`` uses.

For a microcontroller board, the same steps as ``edge-export`` (validate, offline plan, arena
plan, budget) without writing a project, so ``edge-inspect MODEL --board B`` and ``edge-export``
can never disagree: the arena in RAM, the model in flash. For the pip ``tflite-micro``
interpreter, the arena it needs (:func:`pip_arena`). For training, the MobileNetV2 family's
predicted arenas and model sizes (re-exported from :mod:`firmware_export.plan.mobilenet`).

``edge`` imports nothing else of ``firmware_export`` (``tests/test_layers.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge.boards import BoardProfile
from edge.errors import ExportError
from edge.model import Model, read_model
from edge.model.compat import micro_support
from firmware_export.image import HEADER_SIZE, build_image
from firmware_export.plan.abi import default_abi
from firmware_export.plan.arena import DEFAULT_MARGIN, ArenaPlan, plan_arena
from firmware_export.plan.budget import Budget, budget_for, mcu_spec, suggestion
from firmware_export.plan.embed import with_metadata
from firmware_export.plan.kernels import unsupported_ops
from firmware_export.plan.mobilenet import family, largest_fitting, mobilenet_v2_model_bytes
from firmware_export.plan.offline import (
    METADATA_NAME,
    OfflinePlan,
    find_offline_plan,
    metadata_words,
)

__all__ = ["DEFAULT_MARGIN", "OFFLINE_CHOICES", "ArenaPlan", "BoardFit", "Layout", "Placement",
           "apply_offline_plan", "board_fit", "check_exportable", "family", "largest_fitting",
           "largest_patched", "layouts", "mobilenet_v2_model_bytes", "patch_help",
           "patch_model", "pip_arena", "plan_for_board"]

log = logging.getLogger(__name__)

OFFLINE_CHOICES = ("auto", "off")


def check_exportable(model: Model) -> None:
    """Refuse what TFLite Micro cannot run, with the reason and what to do.

    Raises:
        ExportError: Edge TPU / custom ops, uint8 hybrid models, operators without a kernel.
    """
    support = micro_support(model)
    if not support.runnable:
        raise ExportError(f"{model.source}: {support.reason}")
    missing = unsupported_ops(model.opcodes)
    if missing:
        raise ExportError(f"{model.source}: TFLite Micro has no kernel for "
                          f"{', '.join(missing)}; replace those operators before exporting")


def apply_offline_plan(model: Model, kernels: str, mode: str) -> tuple[Model, OfflinePlan | None]:
    """The model with a better-than-greedy plan written in, when ``mode`` is auto and one exists."""
    if mode not in OFFLINE_CHOICES:
        raise ExportError(f"--offline-plan (={mode!r}) must be one of {', '.join(OFFLINE_CHOICES)}")
    if mode == "off" or METADATA_NAME in model.metadata or len(model.subgraphs) != 1:
        return model, None
    plan = find_offline_plan(model, kernels)
    if plan is None:
        return model, None
    log.info("offline plan (%s order) saves %d B over TFLM's greedy plan", plan.strategy,
             plan.saving)
    content = with_metadata(model.content, METADATA_NAME, metadata_words(plan.offsets))
    return read_model(content, name=model.source), plan


def plan_for_board(model: Model, board: BoardProfile, offline_plan: str = "auto",
                   margin: int = DEFAULT_MARGIN) -> tuple[Model, OfflinePlan | None, ArenaPlan]:
    """The model as the firmware gets it (with an offline plan when one helps) and its arena.

    The one place that decides ``kTensorArenaSize``: edge-export writes it into ``arena.h`` and
    edge-flash into the image header, so the two always agree for the same model and board.
    """
    spec = mcu_spec(board)
    model, offline = apply_offline_plan(model, spec.kernels, offline_plan)
    return model, offline, plan_arena(model, spec.pointer_size, spec.kernels, margin,
                                      abi=default_abi(spec.pointer_size, board.cpu))


def patch_model(model: Model, patch: str | tuple[int, int], board: BoardProfile | None = None,
                offline_plan: str = "auto", max_overhead: float = 0.25
                ) -> tuple[Model, Any]:
    """``model`` rewritten for patch-based inference (``--patch off|auto|RxC``), planned for
    ``board`` (else the pip interpreter), and the choice made (None: left untiled).

    Raises:
        ExportError: a bad ``patch``, or a model or grid that cannot be tiled.
    """
    from firmware_export.patch.choose import choose_patch, parse_patch
    from firmware_export.plan.abi import get_abi

    grid = parse_patch(patch) if isinstance(patch, str) else patch
    if board is not None:
        spec = mcu_spec(board)
        kernels, abi = spec.kernels, default_abi(spec.pointer_size, board.cpu)
    else:
        kernels, abi = "reference", get_abi("pip")
    choice = choose_patch(model, grid, kernels, abi, offline_plan, max_overhead)
    if choice is None:
        return model, None
    log.info("%s", choice.summary())
    return choice.rewrite.model, choice


def pip_arena(model: Model, margin: int = DEFAULT_MARGIN) -> ArenaPlan:
    """The arena of the pip ``tflite-micro`` interpreter (x86-64, reference kernels, its ABI).

    Raises:
        ValueError: the model's memory plan overlaps (a bad offline plan).
    """
    return plan_arena(model, pointer_size=8, kernels="reference", margin=margin, abi="pip")


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
        return (f"{suggestion(self.placements[0].available, self.arena.pointer_size)}; "
                f"exported with --patch auto larger inputs may fit (edge-inspect MODEL --board "
                f"{self.board.name} --patch auto plans this model tiled; edge-model train "
                f"--board {self.board.name} picks the largest MobileNetV2 that fits tiled)")

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


def largest_patched(board: BoardProfile, classes: int, floor: tuple[float, float] = (0.0, 0.0),
                    margin: int = DEFAULT_MARGIN) -> Any:
    """The largest MobileNetV2 that fits ``board`` when exported with ``--patch auto``, larger
    than ``floor`` (a size key: width x resolution^2, width), or None
    (:func:`firmware_export.patch.family.largest_patched`; each try plans a model: seconds)."""
    from firmware_export.patch.family import largest_patched as largest

    spec = mcu_spec(board)
    return largest(spec.ram_for_arena, spec.flash_for_model, classes, spec.kernels,
                   default_abi(spec.pointer_size, board.cpu), margin, floor)


LABEL_BYTES = 32  # per class in a slot image: the name and its terminator, generously


@dataclass(frozen=True)
class Layout:
    """One flash layout of the firmware (``--model-slot`` / ``--fallback``) and whether a
    model of some size fits it."""

    name: str
    fits: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.name, "fits": self.fits, "why": self.why}


def layouts(board: BoardProfile, model_bytes: int, classes: int) -> tuple[Layout, ...]:
    """Which firmware layouts hold a model of ``model_bytes`` with ``classes`` labels: built in
    (the default), ``--model-slot`` with the model also embedded as fallback, and
    ``--model-slot --fallback none`` (the slot image takes the model part too)."""
    spec = mcu_spec(board)
    built_in = spec.model_region(slot=False).size
    found = [Layout("built in (default)", model_bytes <= built_in,
                    f"{model_bytes:,} of {built_in:,} B")]
    slot = spec.slot_region(True)
    if slot is not None:
        image = HEADER_SIZE + model_bytes + LABEL_BYTES * classes
        part = spec.model_region(slot=True).size
        found.append(Layout("--model-slot --fallback embedded",
                            model_bytes <= part and image <= slot.length,
                            f"model {model_bytes:,} of {part:,} B, image about {image:,} of "
                            f"{slot.length:,} B"))
        whole = spec.slot_region(True, fallback=False)
        if whole is not None:
            found.append(Layout("--model-slot --fallback none", image <= whole.length,
                                f"image about {image:,} of {whole.length:,} B"))
    return tuple(found)


def patch_help(model: Model, board: BoardProfile, offline_plan: str = "auto",
               margin: int = DEFAULT_MARGIN) -> str | None:
    """``--patch auto`` with the arena it gives, when it makes ``model``'s arena fit ``board``
    (None when it does not, or the model cannot be tiled). Plans the rewrite: seconds."""
    spec = mcu_spec(board)
    abi = default_abi(spec.pointer_size, board.cpu)
    tail = plan_arena(model, spec.pointer_size, spec.kernels, abi=abi).tail.total
    if tail + model.input_tensors[0].nbytes > spec.ram_for_arena:
        return None  # the tail and the input, live while the tiles run, do not fit alone
    try:
        _, choice = patch_model(model, "auto", board, offline_plan)
    except ExportError:
        return None
    if choice is None:
        return None
    size = choice.after + margin
    if size > spec.ram_for_arena:
        return None
    return (f"--patch auto (tiles {choice.grid} over the first stages: arena about {size:,} B "
            f"of {spec.ram_for_arena:,} B, MAC overhead {choice.overhead:+.1%})")
