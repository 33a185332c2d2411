"""Which centroid detector (width, input size) to train for a board: ``--task detect --board``.

The detector is MobileNetV2 cut at stride 8, so the classifier family's estimates
(:mod:`edge.modelbuild.sizing`) do not apply. Candidates keep the images' aspect ratio and are
tried largest first (width x pixels); those whose first activations alone exceed the RAM are
passed over by arithmetic, and the rest are built untrained, quantized to int8 and planned by
the same code ``edge-export`` uses (:func:`firmware_export.plan.fit.board_fit`): the first whose
arena and model fit is chosen, so the choice is the planner's, not an estimate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.boards import BoardProfile
from edge.errors import TrainingError

log = logging.getLogger(__name__)

ALPHAS = (0.35, 0.5, 0.75, 1.0)
WIDTHS = (64, 96, 128, 160, 192, 224, 256, 320)
LINUX_DEFAULT = (0.35, 320)  # a Linux board has no arena limit: the widest candidate


@dataclass(frozen=True)
class DetectorSize:
    alpha: float
    size: tuple[int, int]
    reason: str
    arena: int | None = None
    model_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "input_size": list(self.size), "reason": self.reason,
                "arena": self.arena, "model_bytes": self.model_bytes}


def _divisible(value: float) -> int:
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def activation_floor(alpha: float, size: tuple[int, int]) -> int:
    """Bytes two int8 tensors alive together certainly need (input and first convolution,
    and block 1's input and expansion): no plan can be smaller."""
    width, height = size
    half = (width // 2) * (height // 2)
    first = _divisible(32 * alpha)
    block0 = _divisible(16 * alpha)
    return max(width * height * 3 + half * first, half * block0 * 7)


def candidates(image_size: tuple[int, int]) -> list[tuple[float, tuple[int, int]]]:
    """(alpha, (width, height)) keeping the aspect, largest first."""
    from edge.modelbuild.train_detect import size_for_aspect

    sizes = {size_for_aspect(w, image_size) for w in WIDTHS}
    found = [(a, s) for a in ALPHAS for s in sizes if min(s) >= 32]
    return sorted(found, key=lambda c: (c[0] * c[1][0] * c[1][1], c[0]), reverse=True)


def planned_fit(alpha: float, size: tuple[int, int], classes: int, board: BoardProfile
                ) -> tuple[bool, int, int]:
    """(fits, arena, model bytes) of an untrained int8 detector, as edge-export plans it."""
    from edge.model import read_model
    from edge.modelbuild.detect import build_centroid_model
    from edge.modelbuild.quantize import quantize_keras
    from firmware_export.plan.fit import board_fit

    model = build_centroid_model(alpha, size, classes)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(4)]
    content = quantize_keras(model, frames)
    fit = board_fit(read_model(bytes(content)), board)
    return fit.fits, fit.arena.size, len(content)


def choose_detector_size(board: BoardProfile, classes: int, image_size: tuple[int, int]
                         ) -> DetectorSize:
    """The largest centroid detector that fits ``board`` (see the module doc).

    Raises:
        TrainingError: not even the smallest candidate fits.
    """
    from edge.modelbuild.train_detect import size_for_aspect

    if board.mcu is None:
        alpha, width = LINUX_DEFAULT
        size = size_for_aspect(width, image_size)
        return DetectorSize(alpha, size, f"{board.name} is a Linux board without an arena "
                            f"limit: MobileNetV2 {alpha:g} at {size[0]}x{size[1]}")
    ram = board.mcu.ram_for_arena
    tried: list[str] = []
    for alpha, size in candidates(image_size):
        floor = activation_floor(alpha, size)
        if floor > ram:
            continue
        fits, arena, model_bytes = planned_fit(alpha, size, classes, board)
        log.info("detector %g at %dx%d: arena %d B, model %d B: %s", alpha, *size, arena,
                 model_bytes, "fits" if fits else "does not fit")
        label = f"MobileNetV2 {alpha:g} at {size[0]}x{size[1]}"
        if fits:
            reason = (f"{label} is the largest centroid detector that fits {board.name}: "
                      f"planned arena {arena:,} B of {ram:,} B RAM, int8 model "
                      f"{model_bytes:,} B")
            if tried:
                reason += f"; the next larger, {tried[-1]}"
            return DetectorSize(alpha, size, reason, arena, model_bytes)
        tried.append(f"{label}, needs an arena of {arena:,} B")
    raise TrainingError(f"no centroid detector fits {board.name} ({ram:,} B of RAM for the "
                        "arena); choose a board with more memory")
