"""Per-cell class maps to object centres (FOMO-style): cells -> regions -> one centroid each.

A centroid model (``edge-model train --task detect``) ends in a grid of cells, each with a
softmax over ``background + classes``: output ``[1, H, W, K]`` with channel 0 the background.
This decoder is the one rule, in integers so that the C twin in
``firmware_export/c/edge_centroids.h`` gives the very same records on the same int8 output:

1. A cell belongs to class ``c >= 1`` when ``c`` is its largest channel (ties go to the lower
   channel) and its quantized value is at least the threshold's quantized value
   (:func:`quantize_threshold`: the smallest integer whose real value reaches the threshold).
2. Cells of the same class that touch (8-connectivity) form one region.
3. A region gives one detection: its class, its largest cell value as the score, and the box of
   its cells ``[x0, y0, x1, y1)`` in cell units (the centroid is the box's centre).
4. Detections are ordered by score, best first; equal scores keep the raster order of each
   region's first cell (row by row, left to right), then at most ``max_detections`` are kept.

Pure numpy and OpenCV's connected components; no Python loop per cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.events import Detection

BACKGROUND = 0


@dataclass(frozen=True)
class CentroidSpec:
    """How to read a centroid model's output.

    Attributes:
        scale: the output's quantization scale (0 for a float output).
        zero_point: the output's zero point.
        threshold: smallest class score (0-1) a cell needs.
        max_detections: the most detections kept (0 keeps none).
    """

    scale: float = 0.0
    zero_point: int = 0
    threshold: float = 0.5
    max_detections: int = 32


@dataclass(frozen=True)
class Region:
    """One decoded region, in cell units and the output's own (quantized) values.

    Attributes:
        channel: the class channel (>= 1; 0 is the background).
        value: the region's largest cell value (quantized, or float for a float output).
        x0, y0, x1, y1: the cells' bounding box, end-exclusive.
        first: raster index of the region's first cell (``y * W + x``).
        cells: how many cells the region has.
    """

    channel: int
    value: float
    x0: int
    y0: int
    x1: int
    y1: int
    first: int
    cells: int


def quantize_threshold(threshold: float, scale: float, zero_point: int) -> float:
    """The smallest stored value whose real value ``scale * (q - zp)`` is >= ``threshold``.

    A float output (``scale == 0``) keeps the threshold itself.
    """
    if not scale:
        return threshold
    return float(math.ceil(round(threshold / scale, 6)) + zero_point)


def decode_regions(grid: np.ndarray, spec: CentroidSpec) -> list[Region]:
    """Regions of ``grid`` (``[H, W, K]`` or ``[1, H, W, K]``), best first (see module doc)."""
    cells = np.asarray(grid)
    if cells.ndim == 4:
        cells = cells[0]
    if cells.ndim != 3 or cells.shape[2] < 2:
        raise ValueError(f"a centroid output is [1, H, W, K] with K >= 2, not {list(grid.shape)}")
    if spec.max_detections <= 0:
        return []
    winner = np.argmax(cells, axis=2)  # first maximum: ties go to the lower channel
    best = np.take_along_axis(cells, winner[..., None], axis=2)[..., 0]
    on = (winner != BACKGROUND) & (best >= quantize_threshold(spec.threshold, spec.scale,
                                                              spec.zero_point))
    regions: list[Region] = []
    for channel in np.unique(winner[on]):
        regions.extend(_channel_regions(winner == channel, on, best, int(channel)))
    regions.sort(key=lambda r: (-r.value, r.first))
    return regions[:spec.max_detections]


def _channel_regions(of_channel: np.ndarray, on: np.ndarray, best: np.ndarray,
                     channel: int) -> list[Region]:
    mask = (of_channel & on).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    flat = labels.reshape(-1)
    inside = flat > 0
    ids = flat[inside]
    values = best.reshape(-1)[inside].astype(np.float64)
    positions = np.flatnonzero(inside)
    top = np.full(count, -np.inf)
    np.maximum.at(top, ids, values)
    first = np.full(count, np.iinfo(np.int64).max)
    np.minimum.at(first, ids, positions)
    return [Region(channel, float(top[i]), int(stats[i, cv2.CC_STAT_LEFT]),
                   int(stats[i, cv2.CC_STAT_TOP]),
                   int(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH]),
                   int(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]),
                   int(first[i]), int(stats[i, cv2.CC_STAT_AREA]))
            for i in range(1, count)]


def score_of(region: Region, spec: CentroidSpec) -> float:
    """The region's score as a real number in [0, 1]."""
    if not spec.scale:
        return float(region.value)
    return float(spec.scale * (region.value - spec.zero_point))


def decode_centroids(grid: np.ndarray, spec: CentroidSpec, labels: Sequence[str],
                     frame_size: tuple[int, int]) -> list[Detection]:
    """Detections of ``grid`` with boxes in the frame's pixels (``frame_size`` = width, height).

    ``labels`` are indexed by channel (``labels[0]`` names the background).
    """
    cells = np.asarray(grid)
    height, width = cells.shape[-3], cells.shape[-2]
    sx, sy = frame_size[0] / width, frame_size[1] / height
    return [Detection(r.channel, labels[r.channel] if r.channel < len(labels) else "",
                      score_of(r, spec), (r.x0 * sx, r.y0 * sy, r.x1 * sx, r.y1 * sy))
            for r in decode_regions(cells, spec)]
