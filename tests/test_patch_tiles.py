"""The pure tile arithmetic (firmware_export/patch/tiles.py): halos per layer kind and stride,
border padding with TensorFlow's SAME rule, tile order and coverage, MAC counting, the search.

The brute-force check computes, for every output pixel of a tile, which input pixels the
untiled layers read (by walking every kernel tap) and compares with the traced regions.
"""

from __future__ import annotations

import itertools

import pytest

from firmware_export.patch.tiles import (
    Layer,
    Window,
    candidate_grids,
    plan_tile,
    plan_tiles,
    same_pads,
    search,
    split_ranges,
    tiled_macs,
    untiled_macs,
)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 3, 2, (0, 1)),  # even size, stride 2: the extra pixel goes at the bottom/right
    (225, 3, 2, (1, 1)),
    (112, 3, 1, (1, 1)),
    (7, 1, 1, (0, 0)),
    (10, 5, 2, (1, 2)),
    (9, 4, 3, (0, 1)),
])
def test_same_pads_follow_tensorflow(size: int, kernel: int, stride: int,
                                     expected: tuple[int, int]) -> None:
    assert same_pads(size, kernel, stride) == expected
    before, after = expected
    out = -(-size // stride)
    assert (size + before + after - kernel) // stride + 1 == out


def test_same_pads_with_dilation() -> None:
    assert same_pads(20, 3, 1, dilation=2) == (2, 2)


@pytest.mark.parametrize("kernel, stride, pads, out, expected", [
    (3, 1, (1, 1), (0, 4), (-1, 5)),  # halo of one each side; top reads padding
    (3, 2, (0, 1), (0, 4), (0, 9)),  # stride 2, SAME on an even size: no top padding
    (3, 2, (0, 1), (4, 8), (8, 17)),
    (1, 1, (0, 0), (3, 5), (3, 5)),  # 1x1: no halo
    (5, 1, (2, 2), (10, 12), (8, 14)),
])
def test_input_range_per_kernel_and_stride(kernel: int, stride: int, pads: tuple[int, int],
                                           out: tuple[int, int],
                                           expected: tuple[int, int]) -> None:
    window = Window((kernel, kernel), (stride, stride), pads=(*pads, *pads))
    assert window.input_range(0, out) == expected
    assert window.input_range(1, out) == expected


def test_split_ranges_cover_once_larger_first() -> None:
    assert split_ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split_ranges(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError):
        split_ranges(3, 4)


def _taps(window: Window | None, row: int, col: int) -> list[tuple[int, int]]:
    if window is None:
        return [(row, col)]
    return [(row * window.stride[0] - window.pads[0] + i * window.dilation[0],
             col * window.stride[1] - window.pads[2] + j * window.dilation[1])
            for i in range(window.kernel[0]) for j in range(window.kernel[1])]


def _brute_force(layers: list[Layer], shapes: dict, out_pixels: set[tuple[int, int]]
                 ) -> dict[int, set[tuple[int, int]]]:
    """Pixels of each tensor (including padding positions) the untiled layers read."""
    wanted: dict[int, set[tuple[int, int]]] = {layers[-1].output: set(out_pixels)}
    for layer in reversed(layers):
        for tensor in layer.inputs:
            reads = wanted.setdefault(tensor, set())
            height, width, _ = shapes[layer.output]
            for row, col in wanted.get(layer.output, set()):
                if 0 <= row < height and 0 <= col < width:  # padding is not computed
                    reads.update(_taps(layer.window, row, col))
    del wanted[layers[-1].output]
    return wanted


def _block_layers() -> tuple[list[Layer], dict]:
    """A stem (3x3 s2 SAME on an even size), a residual block and a stride-2 depthwise."""
    stem = Window((3, 3), (2, 2), pads=(0, 1, 0, 1))
    dw = Window((3, 3), pads=(1, 1, 1, 1))
    down = Window((3, 3), (2, 2), pads=(0, 1, 0, 1))
    layers = [
        Layer(0, (0,), 1, stem, 27 * 8),
        Layer(1, (1,), 2, Window((1, 1)), 8 * 16),
        Layer(2, (2,), 3, dw, 9 * 16),
        Layer(3, (3,), 4, Window((1, 1)), 16 * 8),
        Layer(4, (1, 4), 5, None, 8),  # residual ADD: reads the block input again
        Layer(5, (5,), 6, down, 9 * 8),
    ]
    shapes = {0: (32, 30, 3), 1: (16, 15, 8), 2: (16, 15, 16), 3: (16, 15, 16),
              4: (16, 15, 8), 5: (16, 15, 8), 6: (8, 8, 8)}
    return layers, shapes


@pytest.mark.parametrize("grid", [(2, 2), (3, 2), (1, 4), (4, 3)])
def test_traced_regions_are_exactly_what_the_layers_read(grid: tuple[int, int]) -> None:
    layers, shapes = _block_layers()
    tiles = plan_tiles(layers, shapes, grid)
    for tile in tiles:
        (r0, r1), (c0, c1) = tile.steps[-1].out
        reads = _brute_force(layers, shapes, set(itertools.product(range(r0, r1),
                                                                   range(c0, c1))))
        traced: dict[int, set[tuple[int, int]]] = {}
        for step in tile.steps:
            (o0, o1), (p0, p1) = step.out
            for need in step.needs:
                (a0, a1), (b0, b1) = need.region
                top, bottom, left, right = need.pads
                box = {(r, c) for r in range(a0 - top, a1 + bottom)
                       for c in range(b0 - left, b1 + right)}
                traced.setdefault(need.tensor, set()).update(box)
                taps = set()
                for r, c in itertools.product(range(o0, o1), range(p0, p1)):
                    taps.update(_taps(step.layer.window, r, c))
                assert taps == box  # the halo and padding are exactly the taps, no more
                height, width, _ = shapes[need.tensor]
                assert all(0 <= r < height and 0 <= c < width for r in range(a0, a1)
                           for c in range(b0, b1))
        assert traced == reads


def test_border_padding_only_where_a_tile_meets_the_border() -> None:
    layers, shapes = _block_layers()
    tiles = plan_tiles(layers, shapes, (2, 2))
    dw = {tile.row * 2 + tile.col: tile.steps[2].needs[0] for tile in tiles}
    # stride-1 3x3 depthwise: each tile pads one pixel on its outer sides only
    assert dw[0].pads == (1, 0, 1, 0)
    assert dw[1].pads == (1, 0, 0, 1)
    assert dw[2].pads == (0, 1, 1, 0)
    assert dw[3].pads == (0, 1, 0, 1)
    stem = {tile.row * 2 + tile.col: tile.steps[0].needs[0] for tile in tiles}
    # stride 2 on an even size: SAME pads nothing at the top/left, one at the bottom/right
    assert stem[0].pads == (0, 0, 0, 0)
    assert stem[3].pads == (0, 1, 0, 1)


def test_residual_input_is_computed_once_over_the_union() -> None:
    layers, shapes = _block_layers()
    tile = plan_tile(layers[:5], shapes, ((0, 8), (0, 8)))
    add = tile.steps[4].needs
    expand = tile.steps[1].needs[0]
    assert add[0].region == ((0, 8), (0, 8))
    assert expand.region == ((0, 9), (0, 9))  # the depthwise's halo reaches one further
    assert tile.regions[1] == ((0, 9), (0, 9))


def test_tiles_run_row_major_and_cover_the_split_once() -> None:
    layers, shapes = _block_layers()
    tiles = plan_tiles(layers, shapes, (3, 4))
    assert [(t.row, t.col) for t in tiles] == [(r, c) for r in range(3) for c in range(4)]
    covered = [(r, c) for t in tiles
               for r in range(*t.steps[-1].out[0]) for c in range(*t.steps[-1].out[1])]
    assert sorted(covered) == [(r, c) for r in range(8) for c in range(8)]


def test_grid_limits() -> None:
    layers, shapes = _block_layers()
    with pytest.raises(ValueError, match="concatenation"):
        plan_tiles(layers, shapes, (11, 2))
    with pytest.raises(ValueError, match="cannot cut"):
        plan_tiles(layers, shapes, (9, 2))


def test_macs_overhead_grows_with_the_grid() -> None:
    layers, shapes = _block_layers()
    base = untiled_macs(layers, shapes)
    costs = [tiled_macs(plan_tiles(layers, shapes, g)) for g in ((1, 2), (2, 2), (4, 4))]
    assert base < costs[0] < costs[1] < costs[2]
    assert tiled_macs(plan_tiles(layers[:2], shapes, (1, 1))) == untiled_macs(layers[:2], shapes)


def test_candidate_grids() -> None:
    assert candidate_grids((56, 56, 24)) == [(2, 2), (2, 3), (3, 3), (3, 4), (4, 4)]
    assert candidate_grids((3, 2, 8)) == [(2, 2)]


def test_search_picks_the_smallest_arena_within_budget() -> None:
    layers, shapes = _block_layers()
    model_macs = untiled_macs(layers, shapes)

    def arena(split: int, grid: tuple[int, int]) -> int:
        return 1000 - 10 * grid[0] * grid[1] - split

    best, tried = search(layers, shapes, [4, 5], model_macs, arena, max_overhead=10.0)
    assert best is not None and best.grid == (4, 4) and best.split == 5
    _, few = search(layers, shapes, [4, 5], model_macs, arena, max_overhead=0.3)
    assert len(few) < len(tried)
    assert all(o.overhead <= 0.3 for o in few)
    none, _ = search(layers, shapes, [5], model_macs, arena, max_overhead=0.0)
    assert none is None
