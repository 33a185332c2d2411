"""The centroid decoder (FOMO-style per-cell detectors): Python and C give the same regions.

The vectors below were worked out by hand from the rule in edge/decode/centroids.py's module
doc; random grids then compare the Python decoder with the C header compiled by the real gcc.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge.decode.centroids import (
    CentroidSpec,
    Region,
    decode_centroids,
    decode_regions,
    quantize_threshold,
)

ROOT = Path(__file__).resolve().parents[1]
HEADER_DIR = ROOT / "firmware_export" / "c"
GCC = shutil.which("gcc")
INT8_SOFTMAX = CentroidSpec(scale=1 / 256, zero_point=-128, threshold=0.5, max_detections=8)


def _grid(height: int, width: int, channels: int, cells: dict[tuple[int, int], list[int]]
          ) -> np.ndarray:
    """Background everywhere (channel 0 high), with the given cells set."""
    grid = np.full((1, height, width, channels), -128, np.int8)
    grid[..., 0] = 100
    for (y, x), values in cells.items():
        grid[0, y, x] = values
    return grid


# (grid, spec, expected regions) worked out by hand.
VECTORS: list[tuple[np.ndarray, CentroidSpec, list[Region]]] = [
    # Nothing over the background.
    (_grid(4, 4, 3, {}), INT8_SOFTMAX, []),
    # Two diagonal cells of class 1 are one region (8-connectivity); class 2 alone; a class-1
    # cell under the threshold (q=-1 < 0) is dropped.
    (_grid(6, 8, 3, {(1, 1): [-128, 120, -128], (2, 2): [-128, 110, -128],
                     (4, 6): [-128, -128, 127], (0, 7): [-128, -1, -128]}),
     INT8_SOFTMAX,
     [Region(2, 127, 6, 4, 7, 5, 38, 1), Region(1, 120, 1, 1, 3, 3, 9, 2)]),
    # A tie between background and class 1 goes to the background; a tie between classes 1
    # and 2 goes to class 1; touching cells of different classes stay apart.
    (_grid(3, 3, 3, {(0, 0): [50, 50, -128], (1, 1): [-128, 60, 60], (1, 2): [-128, -128, 70]}),
     INT8_SOFTMAX,
     [Region(2, 70, 2, 1, 3, 2, 5, 1), Region(1, 60, 1, 1, 2, 2, 4, 1)]),
    # Equal scores keep raster order; max_detections keeps the first two.
    (_grid(2, 5, 2, {(1, 4): [-128, 90], (0, 0): [-128, 90], (0, 2): [-128, 90]}),
     CentroidSpec(1 / 256, -128, 0.5, max_detections=2),
     [Region(1, 90, 0, 0, 1, 1, 0, 1), Region(1, 90, 2, 0, 3, 1, 2, 1)]),
    # A U shape is one region whose box spans it.
    (_grid(3, 3, 2, {(0, 0): [-128, 10], (1, 0): [-128, 20], (2, 0): [-128, 30],
                     (2, 1): [-128, 40], (2, 2): [-128, 50], (1, 2): [-128, 60],
                     (0, 2): [-128, 70]}),
     INT8_SOFTMAX, [Region(1, 70, 0, 0, 3, 3, 0, 7)]),
    # The threshold is exact at its quantized value: 0.75 -> q = 64.
    (_grid(1, 3, 2, {(0, 0): [-128, 63], (0, 2): [-128, 64]}),
     CentroidSpec(1 / 256, -128, 0.75), [Region(1, 64, 2, 0, 3, 1, 2, 1)]),
]


@pytest.mark.parametrize(("grid", "spec", "expected"), VECTORS)
def test_python_decoder_matches_the_hand_worked_vectors(grid: np.ndarray, spec: CentroidSpec,
                                                         expected: list[Region]) -> None:
    assert decode_regions(grid, spec) == expected


def test_thresholds_quantize_to_the_smallest_reaching_value() -> None:
    assert quantize_threshold(0.5, 1 / 256, -128) == 0
    assert quantize_threshold(0.75, 1 / 256, -128) == 64
    assert quantize_threshold(0.7501, 1 / 256, -128) == 65
    assert quantize_threshold(0.3, 0.0, 0) == 0.3  # float outputs compare real values


def test_boxes_scale_to_the_frame_and_labels_index_by_channel() -> None:
    grid, spec, _ = VECTORS[1]
    found = decode_centroids(grid, spec, ["background", "nut", "bolt"], (160, 120))
    assert [(d.label, d.index) for d in found] == [("bolt", 2), ("nut", 1)]
    assert found[0].box == (120.0, 80.0, 140.0, 100.0)  # cell (6, 4) of 8x6 on 160x120
    assert found[1].box == (20.0, 20.0, 60.0, 60.0)
    assert found[0].score == pytest.approx((127 + 128) / 256)


def test_float_outputs_decode_by_real_values() -> None:
    grid = np.zeros((1, 2, 2, 2), np.float32)
    grid[..., 0] = 1.0
    grid[0, 1, 1] = [0.2, 0.8]
    found = decode_centroids(grid, CentroidSpec(threshold=0.6), ["bg", "x"], (20, 20))
    assert [(d.index, round(d.score, 3), d.box) for d in found] == [
        (1, 0.8, (10.0, 10.0, 20.0, 20.0))]


def test_wrong_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        decode_regions(np.zeros((1, 4, 4, 1), np.int8), INT8_SOFTMAX)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if GCC is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path_factory.mktemp("centroids") / "harness"
    subprocess.run([GCC, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-Wconversion",
                    "-Wshadow", "-pedantic", f"-I{HEADER_DIR}",
                    str(ROOT / "tests" / "c" / "centroids_harness.c"), "-o", str(exe)],
                   check=True, timeout=120)
    return exe


def _c_regions(exe: Path, cases: list[tuple[np.ndarray, CentroidSpec]]) -> list[list[Region]]:
    lines = []
    for grid, spec in cases:
        _, h, w, k = grid.shape
        threshold = int(quantize_threshold(spec.threshold, spec.scale, spec.zero_point))
        lines.append(f"{h} {w} {k} {threshold} {spec.max_detections}")
        lines.append(" ".join(str(int(v)) for v in grid.reshape(-1)))
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True, timeout=120).stdout.split("\n")
    results, at = [], 0
    for _ in cases:
        count = int(out[at])
        rows = [list(map(int, line.split())) for line in out[at + 1:at + 1 + count]]
        results.append([Region(c, float(v), x0, y0, x1, y1, first, n)
                        for c, v, x0, y0, x1, y1, first, n in rows])
        at += 1 + count
    return results


def test_c_decoder_matches_the_hand_worked_vectors(harness: Path) -> None:
    cases = [(grid, spec) for grid, spec, _ in VECTORS]
    assert _c_regions(harness, cases) == [expected for *_, expected in VECTORS]


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_agree_on_random_grids(harness: Path, seed: int) -> None:
    """Random grids of many shapes, class counts, thresholds and caps; blobs so regions form."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(60):
        h, w, k = int(rng.integers(1, 24)), int(rng.integers(1, 24)), int(rng.integers(2, 6))
        grid = rng.integers(-128, 128, size=(1, h, w, k)).astype(np.int8)
        grid[..., 0] = np.where(rng.random((1, h, w)) < 0.6, 127, grid[..., 0])  # background
        spec = CentroidSpec(1 / 256, -128, float(rng.choice([0.0, 0.3, 0.5, 0.9])),
                            int(rng.integers(1, 12)))
        cases.append((grid, spec))
    assert _c_regions(harness, cases) == [decode_regions(g, s) for g, s in cases]
