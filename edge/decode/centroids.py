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

Pure numpy; no Python loop per cell (regions grow by whole-grid steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    return _regions(winner, best, on)[:spec.max_detections]


def _regions(winner: np.ndarray, best: np.ndarray, on: np.ndarray) -> list[Region]:
    """Label touching cells of one class by spreading the smallest raster index among them
    until nothing changes (a region's label is then its first cell), then gather each region's
    class, largest value and box with unbuffered numpy reductions."""
    height, width = winner.shape
    none = height * width
    label = np.where(on, np.arange(none).reshape(height, width), none)
    channel = np.where(on, winner, -1)
    padded_channel = np.pad(channel, 1, constant_values=-1)
    while True:
        padded = np.pad(label, 1, constant_values=none)
        spread = label.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                same = on & (padded_channel[dy:dy + height, dx:dx + width] == channel)
                spread = np.where(same, np.minimum(spread, padded[dy:dy + height, dx:dx + width]),
                                  spread)
        if np.array_equal(spread, label):
            break
        label = spread
    ids = label[on]
    ys, xs = np.nonzero(on)
    firsts = np.unique(ids)
    slot = np.searchsorted(firsts, ids)
    count = len(firsts)
    top = np.full(count, -np.inf)
    np.maximum.at(top, slot, best[on].astype(np.float64))
    x0, y0 = np.full(count, width), np.full(count, height)
    x1, y1 = np.zeros(count, np.int64), np.zeros(count, np.int64)
    np.minimum.at(x0, slot, xs)
    np.minimum.at(y0, slot, ys)
    np.maximum.at(x1, slot, xs + 1)
    np.maximum.at(y1, slot, ys + 1)
    cells = np.bincount(slot, minlength=count)
    classes = winner.reshape(-1)[firsts]
    regions = [Region(int(classes[i]), float(top[i]), int(x0[i]), int(y0[i]), int(x1[i]),
                      int(y1[i]), int(firsts[i]), int(cells[i])) for i in range(count)]
    regions.sort(key=lambda r: (-r.value, r.first))
    return regions


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
