"""``--patch auto|off|RxC``: which split and grid, and the predicted arena before and after.

``auto`` asks :func:`firmware_export.patch.tiles.search` for the smallest predicted arena within
the multiply-add budget, over cut points where the model's tensor is at a local minimum (the end
of a block: the smallest tensor to concatenate) before the layer-by-layer peak is behind, and
square-ish grids up to 4 x 4. Each option is rewritten and planned with the same arena model as
the export (TFLM's greedy plan, or the offline plan when ``--offline-plan auto`` finds a better
one), so the number it reports is the one ``kTensorArenaSize`` is built from.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from edge.errors import ExportError
from edge.model.analysis import live_bytes_per_op
from edge.model.types import Model
from firmware_export.patch.rewrite import Chain, Rewrite, describe_chain, rewrite_model
from firmware_export.patch.tiles import MAX_GRID, search
from firmware_export.plan.abi import Abi
from firmware_export.plan.arena import plan_arena
from firmware_export.plan.offline import find_offline_plan

log = logging.getLogger(__name__)

DEFAULT_MAX_OVERHEAD = 0.25
PATCH_HELP = "off, auto or RxC (e.g. 3x3)"
_GRID = re.compile(r"^([1-9][0-9]?)x([1-9][0-9]?)$")


TWO_STAGE_GRIDS = ((3, 3), (4, 4))  # first stage of a two-stage patch
SECOND_STAGE_GRIDS = ((2, 2), (3, 3))


@dataclass(frozen=True)
class Stage:
    """One tiled part of the model, in the original model's operator numbers."""

    grid: tuple[int, int]
    ops: tuple[int, int]
    split_tensor: str

    def to_dict(self) -> dict[str, Any]:
        return {"grid": f"{self.grid[0]}x{self.grid[1]}", "operators": list(self.ops),
                "split_tensor": self.split_tensor}


@dataclass(frozen=True)
class PatchChoice:
    """The rewrite chosen (one or two tiled stages) and what it does to the arena."""

    rewrite: Rewrite  # the final model (its ``original`` is the untiled file)
    stages: tuple[Stage, ...]
    model_macs: int
    before: int  # predicted minimum arena of the untiled model
    after: int  # of the rewritten one
    tried: int  # options planned
    seconds: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else 0.0

    @property
    def overhead(self) -> float:
        return self.rewrite.macs / self.model_macs - 1 if self.model_macs else 0.0

    @property
    def grid(self) -> str:
        return "+".join(s.to_dict()["grid"] for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"grid": self.grid, "operators": [self.stages[0].ops[0], self.stages[-1].ops[1]],
                "stages": [s.to_dict() for s in self.stages],
                "mac_overhead": round(self.overhead, 4), "macs": self.rewrite.macs,
                "model_macs": self.model_macs, "model_bytes": len(self.rewrite.content),
                "arena_before": self.before, "arena_after": self.after,
                "ratio": round(self.ratio, 4), "options_tried": self.tried,
                "search_seconds": round(self.seconds, 2)}

    def summary(self) -> str:
        parts = " then ".join(f"{s.grid[0]}x{s.grid[1]} over operators {s.ops[0]}-{s.ops[1]}"
                              for s in self.stages)
        return (f"patch {parts} (split at {self.stages[-1].split_tensor[:50]!r}): arena "
                f"{self.before:,} -> {self.after:,} B ({self.ratio:.3f}x), MAC overhead "
                f"{self.overhead:+.1%}, {self.tried} option(s) planned in {self.seconds:.1f} s")


def _stage(rewrite: Rewrite, offset: int = 0) -> Stage:
    return Stage(rewrite.grid, (rewrite.ops[0] + offset, rewrite.ops[1] + offset),
                 rewrite.split_tensor)


def parse_patch(text: str) -> str | tuple[int, int]:
    """``off``, ``auto`` or a grid ``(rows, cols)``.

    Raises:
        ExportError: anything else.
    """
    value = text.strip().lower()
    if value in ("off", "auto"):
        return value
    match = _GRID.match(value)
    grid = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or grid == (1, 1) or max(grid) > MAX_GRID:
        raise ExportError(f"--patch (={text!r}) must be {PATCH_HELP}, with at most 10 tiles a "
                          "side and more than one tile")
    return grid


def predicted_minimum(model: Model, kernels: str, abi: Abi, offline_plan: str) -> int:
    """The arena TFLM needs for ``model`` as the export will ship it."""
    offsets = None
    if offline_plan == "auto" and len(model.subgraphs) == 1:
        plan = find_offline_plan(model, kernels)
        offsets = list(plan.offsets) if plan is not None else None
    return plan_arena(model, abi.pointer_size, kernels, offline=offsets, abi=abi).minimum


def cut_candidates(model: Model, chain: Chain) -> list[int]:
    """Cut points worth trying: block ends (tensor smaller than the next) before the peak's end.

    The search stops one candidate after the first cut behind which no operator of the untiled
    model holds a quarter of the peak before it.
    """
    live = live_bytes_per_op(model.main)
    tensors = model.main.tensors
    found: list[int] = []
    past = 0  # candidates after the peak is behind (one more stage may still pay off)
    for k in chain.splits:
        layer = chain.layers[k]
        size = tensors[layer.output].nbytes
        following = model.main.operators[layer.op + 1:layer.op + 2]
        windows = any(chain.layers[j].window is not None for j in range(k + 1))
        if not windows or (following and tensors[following[0].outputs[0]].nbytes < size):
            continue
        found.append(k)
        if max(live[layer.op + 1:], default=0) < max(live[: layer.op + 1]) / 4:
            past += 1
            if past == 2:
                break
    return found


MAX_UNTILED_PREFIX = 4  # operators tried before the tiles (a TRANSPOSE from NCHW, a QUANTIZE)


def _first_chain(model: Model) -> Chain | None:
    """The patchable stages from the input, or after a few leading operators that cannot run
    on tiles (converters from NCHW frameworks start with a TRANSPOSE); None if there are none."""
    candidates: list[int | None] = [None, *range(1, min(MAX_UNTILED_PREFIX,
                                                        len(model.main.operators)))]
    for start in candidates:
        try:
            chain = describe_chain(model, start)
        except ExportError:
            if start is None:
                raise
            continue
        if any(layer.window is not None for layer in chain.layers) and chain.splits:
            return chain
    return None


def choose_patch(model: Model, patch: str | tuple[int, int], kernels: str, abi: Abi,
                 offline_plan: str = "auto", max_overhead: float = DEFAULT_MAX_OVERHEAD
                 ) -> PatchChoice | None:
    """The rewrite ``patch`` asks for (None for ``off``).

    Raises:
        ExportError: the model cannot be patched, the grid does not fit it, or ``auto`` finds
            no option within ``max_overhead``.
    """
    if patch == "off":
        return None
    if not 0 <= max_overhead <= 10:
        raise ExportError(f"--max-overhead (={max_overhead}) must be between 0 and 10 "
                          "(a fraction of the model's multiply-adds)")
    started = time.monotonic()
    chain = _first_chain(model)
    if chain is None:
        first = model.main.operators[0] if model.main.operators else None
        why = (f"first operator: {first.opcode}" if first is not None else "no operators")
        if first is not None and model.main.tensors[first.outputs[0]].dtype == "uint8":
            why = "its activations are uint8, which TFLM's SLICE, PAD and CONCATENATION refuse"
        reason = f"{model.source}: no operator near the input can run on tiles ({why})"
        if patch == "auto":
            log.info("%s: the model stays untiled", reason)
            return None
        raise ExportError(f"{reason}; use --patch off")
    before = predicted_minimum(model, kernels, abi, offline_plan)
    fixed = isinstance(patch, tuple)
    rewrites: dict[tuple[int, tuple[int, int]], Rewrite] = {}

    def arena(split: int, grid: tuple[int, int]) -> int:
        rewrite = rewrite_model(model, chain, split, grid)
        rewrites[(split, grid)] = rewrite
        return predicted_minimum(rewrite.model, kernels, abi, offline_plan)

    best, tried = search(chain.layers, chain.shapes, cut_candidates(model, chain),
                         chain.model_macs, arena, math.inf if fixed else max_overhead,
                         grids=[patch] if isinstance(patch, tuple) else None)
    if best is None and fixed:
        raise ExportError(f"{model.source}: no cut point is at least {patch[0]}x{patch[1]} "
                          "pixels; use a smaller grid")
    if best is None:
        raise ExportError(f"{model.source}: no tile grid stays within --max-overhead "
                          f"{max_overhead:.0%} of extra multiply-adds; raise it or use "
                          "--patch off")
    for option in tried:
        log.info("patch option: cut after operator %d, %dx%d: arena %d B, MAC overhead %.1f%%",
                 chain.layers[option.split].op, *option.grid, option.arena,
                 100 * option.overhead)
    if best.arena >= before and not fixed:
        log.info("no tile grid makes the arena smaller than %d B: the model stays untiled",
                 before)
        return None
    single = rewrites[(best.split, best.grid)]
    choice = PatchChoice(single, (_stage(single),), chain.model_macs, before, best.arena,
                         len(tried), 0.0)
    if not fixed:
        choice = _two_stages(model, chain, choice, rewrites, kernels, abi, offline_plan,
                             max_overhead)
    return replace(choice, seconds=time.monotonic() - started)


def _two_stages(model: Model, chain: Chain, best: PatchChoice,
                rewrites: dict[tuple[int, tuple[int, int]], Rewrite], kernels: str, abi: Abi,
                offline_plan: str, max_overhead: float) -> PatchChoice:
    """Better: a fine grid over the largest stages, then a coarser one up to the same cut?

    Each tile duplicates its operators' per-channel data in TFLM's tail, so the stages after
    the largest need fewer tiles than the largest themselves.
    """
    end = best.rewrite.split
    end_op = chain.layers[end].op
    tried = best.tried
    for first in cut_candidates(model, chain):
        if first >= end:
            break
        for grid in TWO_STAGE_GRIDS:
            stage1 = rewrites.get((first, grid))
            if stage1 is None:
                continue
            after1 = stage1.model
            split_name = model.main.tensors[chain.layers[first].output].name
            index = next(t.index for t in after1.main.tensors if t.name == split_name)
            start = next(op.index for op in after1.main.operators if index in op.inputs)
            offset = chain.layers[first].op + 1 - start  # original op = rewritten op + offset
            try:
                chain2 = describe_chain(after1, start)
            except ExportError:
                continue
            cuts = [k for k in chain2.splits if chain2.layers[k].op + offset == end_op]
            if not cuts:
                continue
            for grid2 in SECOND_STAGE_GRIDS:
                try:
                    stage2 = rewrite_model(after1, chain2, cuts[0], grid2)
                except ExportError:
                    continue
                tried += 1
                overhead = stage2.macs / chain.model_macs - 1
                if overhead > max_overhead:
                    continue
                arena = predicted_minimum(stage2.model, kernels, abi, offline_plan)
                log.info("patch option: %dx%d to operator %d, then %dx%d to %d: arena %d B",
                         *grid, chain.layers[first].op, *grid2, end_op, arena)
                if arena < best.after:
                    final = replace(stage2, original=model.content)
                    best = PatchChoice(final, (_stage(stage1), _stage(stage2, offset)),
                                       chain.model_macs, best.before, arena, tried, 0.0)
    return replace(best, tried=tried)

