"""Patch-based inference on plain data: receptive fields, halos, border padding, the tile plan.

A model's first stages are described as :class:`Layer` s (a window operator such as a
convolution, or an element-wise one such as ADD) over NHWC tensors known by index. Cutting the
stages' last tensor (the *split*) into an R x C grid, each tile's output region is traced back
through every layer: a window layer needs the input rows ``[a*s - pad_before, (b-1)*s -
pad_before + (k-1)*d + 1)`` for output rows ``[a, b)`` (the halo is what reaches past the tile),
clipped to the tensor; what falls outside the tensor is the tile's *border padding*, which
keeps "SAME" semantics (stride 2 pads more at the bottom/right, as TensorFlow does). A tensor
read by several layers (a residual block's input) is computed once per tile over the union of
what they need, and each reader crops its part.

Everything here is pure (tuples and ints in, tuples and ints out);
:mod:`firmware_export.patch.rewrite` turns a plan into operators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

Range = tuple[int, int]  # half-open [start, stop)
Region = tuple[Range, Range]  # rows, columns
Pads = tuple[int, int, int, int]  # top, bottom, left, right
Shape = tuple[int, int, int]  # height, width, channels

MAX_GRID = 10  # TFLM's CONCATENATION takes at most 10 inputs (kMaxInputNum)


@dataclass(frozen=True)
class Window:
    """A sliding window along height and width, with the padding the untiled layer uses."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pads: Pads = (0, 0, 0, 0)

    def input_range(self, axis: int, out: Range) -> Range:
        """Input positions (unclipped: negative or past the end = padding) for ``out``."""
        before = self.pads[2 * axis]
        span = (self.kernel[axis] - 1) * self.dilation[axis] + 1
        start = out[0] * self.stride[axis] - before
        return start, (out[1] - 1) * self.stride[axis] - before + span

    def output_size(self, axis: int, size: int) -> int:
        span = (self.kernel[axis] - 1) * self.dilation[axis] + 1
        padded = size + self.pads[2 * axis] + self.pads[2 * axis + 1]
        return (padded - span) // self.stride[axis] + 1


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (before, after): the odd pixel goes after."""
    out = -(-size // stride)
    span = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Layer:
    """One operator of the patched stages, as tiles see it.

    Attributes:
        op: the operator's index in the model.
        inputs: the activation tensors it reads (constants are not listed).
        output: the tensor it writes.
        window: its window, or None for an element-wise operator (output pixel = inputs' pixel).
        macs: multiply-adds per output pixel.
    """

    op: int
    inputs: tuple[int, ...]
    output: int
    window: Window | None = None
    macs: int = 0


@dataclass(frozen=True)
class Need:
    """What one layer of one tile reads of one input tensor."""

    tensor: int
    region: Region  # inside the tensor
    pads: Pads  # border padding around it (zero = no PAD)

    @property
    def padded(self) -> bool:
        return any(self.pads)


@dataclass(frozen=True)
class Step:
    """One layer run over one tile: the output region it computes and what it reads."""

    layer: Layer
    out: Region
    needs: tuple[Need, ...]


@dataclass(frozen=True)
class Tile:
    """One tile: its place in the grid and its layers, run depth-first in model order."""

    row: int
    col: int
    steps: tuple[Step, ...]
    regions: dict[int, Region]  # the region of every tensor the tile computes


def split_ranges(size: int, parts: int) -> list[Range]:
    """``[0, size)`` in ``parts`` contiguous ranges, sizes differing by at most one (larger first).

    Raises:
        ValueError: ``parts`` is not in ``1..size``.
    """
    if not 1 <= parts <= size:
        raise ValueError(f"cannot cut {size} positions into {parts} tiles")
    base, extra = divmod(size, parts)
    ranges, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def region_size(region: Region) -> tuple[int, int]:
    return region[0][1] - region[0][0], region[1][1] - region[1][0]


def _hull(a: Region | None, b: Region) -> Region:
    if a is None:
        return b
    return ((min(a[0][0], b[0][0]), max(a[0][1], b[0][1])),
            (min(a[1][0], b[1][0]), max(a[1][1], b[1][1])))


def _clip(wanted: Region, shape: Shape) -> tuple[Region, Pads]:
    (r0, r1), (c0, c1) = wanted
    height, width = shape[0], shape[1]
    inside = ((max(r0, 0), min(r1, height)), (max(c0, 0), min(c1, width)))
    pads = (max(0, -r0), max(0, r1 - height), max(0, -c0), max(0, c1 - width))
    if inside[0][0] >= inside[0][1] or inside[1][0] >= inside[1][1]:
        raise ValueError(f"a tile reads nothing of a tensor of {height}x{width}: region {wanted}")
    return inside, pads


def plan_tile(layers: Sequence[Layer], shapes: dict[int, Shape], out: Region,
              row: int = 0, col: int = 0) -> Tile:
    """Trace ``out`` (a region of the last layer's output) back through ``layers``.

    Raises:
        ValueError: a layer's output is not read by the layers after it (not a chain ending in
            the last layer), or a tile would read nothing of a tensor.
    """
    regions: dict[int, Region] = {layers[-1].output: out}
    needs: dict[int, tuple[Need, ...]] = {}
    for layer in reversed(layers):
        if layer.output not in regions:
            raise ValueError(f"operator {layer.op}'s output is not used by the patched stages")
        own = regions[layer.output]
        found = []
        for tensor in layer.inputs:
            if layer.window is None:
                wanted = own
            else:
                wanted = (layer.window.input_range(0, own[0]),
                          layer.window.input_range(1, own[1]))
            inside, pads = _clip(wanted, shapes[tensor])
            found.append(Need(tensor, inside, pads))
            regions[tensor] = _hull(regions.get(tensor), inside)
        needs[layer.op] = tuple(found)
    produced = {layer.output for layer in layers}
    steps = tuple(Step(layer, regions[layer.output], needs[layer.op]) for layer in layers)
    return Tile(row, col, steps, {t: r for t, r in regions.items() if t in produced})


def plan_tiles(layers: Sequence[Layer], shapes: dict[int, Shape], grid: tuple[int, int]
               ) -> list[Tile]:
    """Every tile of an R x C grid over the last layer's output, in row-major order."""
    rows, cols = grid
    height, width, _ = shapes[layers[-1].output]
    if rows > MAX_GRID or cols > MAX_GRID:
        raise ValueError(f"a grid of {rows}x{cols} needs more than TFLM's {MAX_GRID} "
                         "concatenation inputs")
    return [plan_tile(layers, shapes, (r, c), i, j)
            for i, r in enumerate(split_ranges(height, rows))
            for j, c in enumerate(split_ranges(width, cols))]


def layer_macs(layer: Layer, region: Region) -> int:
    h, w = region_size(region)
    return layer.macs * h * w


def untiled_macs(layers: Iterable[Layer], shapes: dict[int, Shape]) -> int:
    return sum(layer.macs * shapes[layer.output][0] * shapes[layer.output][1]
               for layer in layers)


def tiled_macs(tiles: Iterable[Tile]) -> int:
    return sum(layer_macs(step.layer, step.out) for tile in tiles for step in tile.steps)


def candidate_grids(shape: Shape, max_side: int = 4) -> list[tuple[int, int]]:
    """Grids worth trying over a split tensor of ``shape``: at least 2 x 2, square or one
    column more than rows (tiles are then closest to square on square images)."""
    height, width, _ = shape
    grids = []
    for rows in range(2, min(max_side, height, MAX_GRID) + 1):
        for cols in (rows, rows + 1):
            if cols <= min(max_side, width, MAX_GRID):
                grids.append((rows, cols))
    return grids


@dataclass(frozen=True)
class Option:
    """One point of the search: where to split, the grid, its cost and MAC overhead."""

    split: int  # index of the last patched layer in the chain
    grid: tuple[int, int]
    arena: int
    overhead: float  # extra multiply-adds / the whole model's


def search(layers: Sequence[Layer], shapes: dict[int, Shape], splits: Sequence[int],
           model_macs: int, arena: Callable[[int, tuple[int, int]], int],
           max_overhead: float = 0.25, max_side: int = 4,
           grids: Sequence[tuple[int, int]] | None = None) -> tuple[Option | None, list[Option]]:
    """The split and grid with the smallest ``arena`` whose MAC overhead is within budget.

    Args:
        layers: the chain of patchable layers, in model order.
        shapes: (height, width, channels) of every tensor they touch.
        splits: indices into ``layers`` after which the model may be cut.
        model_macs: multiply-adds of the whole untiled model (the overhead's denominator).
        arena: predicted arena bytes of the model rewritten at (split, grid).
        max_overhead: the largest extra fraction of multiply-adds allowed.
        max_side: the largest number of tiles along one side tried.
        grids: the grids to try instead of :func:`candidate_grids`.

    Returns:
        The best option (None if no option is within budget) and every option tried.
    """
    tried = []
    for split in splits:
        chain = layers[: split + 1]
        base = untiled_macs(chain, shapes)
        shape = shapes[chain[-1].output]
        for grid in grids or candidate_grids(shape, max_side):
            if grid[0] > shape[0] or grid[1] > shape[1]:
                continue
            extra = tiled_macs(plan_tiles(chain, shapes, grid)) - base
            overhead = extra / model_macs if model_macs else math.inf
            if overhead > max_overhead:
                continue
            tried.append(Option(split, grid, arena(split, grid), overhead))
    best = min(tried, key=lambda o: (o.arena, o.overhead), default=None)
    return best, tried
