"""Per-cell object detectors for microcontrollers (FOMO-style): build, targets, train, score.

The model is MobileNetV2 cut at stride 8 (Keras' ``block_6_expand_relu``, as Edge Impulse's
FOMO does), then a 1x1 convolution and a 1x1 per-cell classifier over ``background +
classes`` with a softmax: input ``[R, R, 3]`` raw pixels 0..255, output ``[R/8, R/8, 1 + C]``.
Each object is a target at the cell holding its centre; every other cell is background, and
object cells weigh more in the loss (``object_weight``) so the rare cells are not drowned out.
Decoding is :mod:`edge.decode.centroids`, the same in Python and in the firmware's C.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.decode.centroids import CentroidSpec, decode_regions
from edge.errors import TrainingError
from edge.modelbuild.build import _backbone, import_tensorflow, validate_build_args
from edge.modelbuild.yolo_layout import Box

log = logging.getLogger(__name__)

CUT_LAYER = "block_6_expand_relu"  # stride 8 in Keras' MobileNetV2
STRIDE = 8
HEAD_FILTERS = 32


def grid_size(resolution: int) -> int:
    """Cells per side of the output grid of a square input."""
    return resolution // STRIDE


def grid_shape(size: tuple[int, int]) -> tuple[int, int]:
    """Cells (across, down) of the output grid for an input of ``size`` = (width, height)."""
    return size[0] // STRIDE, size[1] // STRIDE


def input_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` as (width, height): an int is a square side."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _cut_backbone(keras: Any, alpha: float, size: tuple[int, int], weights: str | None) -> Any:
    """MobileNetV2 without top for a (width, height) input, cut at :data:`CUT_LAYER`."""
    width, height = size
    if width == height:
        base = _backbone(keras, alpha, width, weights)
    else:
        # Keras builds any (height, width); weights do not depend on the input size, so they
        # are loaded into the square model of the same width and copied across.
        base = keras.applications.MobileNetV2(input_shape=(height, width, 3), alpha=alpha,
                                              include_top=False, weights=None, name="backbone")
        if weights is not None:
            square = _backbone(keras, alpha, max(MIN_SIDE_FOR_WEIGHTS, min(size)), weights)
            base.set_weights(square.get_weights())
    return keras.Model(base.input, base.get_layer(CUT_LAYER).output, name="backbone")


MIN_SIDE_FOR_WEIGHTS = 96


def build_centroid_model(alpha: float, size: int | tuple[int, int], classes: int, *,
                         weights: str | None = None, head_kernel: int = 1) -> Any:
    """A Keras centroid model (see the module doc), input raw RGB pixels 0..255.

    ``size`` is the input (width, height), or one int for a square; both sides must be
    multiples of :data:`STRIDE`. The output is ``[height/8, width/8, 1 + classes]``.
    ``head_kernel`` 3 lets each cell's head see its neighbours' features.
    """
    width, height = input_size(size)
    validate_build_args(alpha, min(width, height), classes + 1)
    if width % STRIDE or height % STRIDE:
        raise TrainingError(f"input size (={width}x{height}) must have both sides multiples "
                            f"of {STRIDE}")
    keras = import_tensorflow().keras
    cut = _cut_backbone(keras, alpha, (width, height), weights)
    inputs = keras.Input((height, width, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = cut(x)
    x = keras.layers.Conv2D(HEAD_FILTERS, head_kernel, padding="same", activation="relu",
                            name="head")(x)
    x = keras.layers.Conv2D(classes + 1, 1, name="cells")(x)
    outputs = keras.layers.Softmax(name="cell_scores")(x)
    name = f"centroids_{alpha:g}_{width}x{height}"
    return keras.Model(inputs, outputs, name=name)


def cell_targets(boxes: Sequence[Sequence[Box]], grid: int | tuple[int, int]) -> np.ndarray:
    """Class per cell (0 = background, label + 1 at each object's centre), ``(N, rows, cols)``.

    ``grid`` is (cells across, cells down), or one int for a square grid.
    """
    across, down = input_size(grid)
    targets = np.zeros((len(boxes), down, across), np.int32)
    for n, objects in enumerate(boxes):
        for box in objects:
            x = min(int(box.cx * across), across - 1)
            y = min(int(box.cy * down), down - 1)
            targets[n, y, x] = box.label + 1
    return targets


def cell_weights(targets: np.ndarray, object_weight: float,
                 neighbour_weight: float = 1.0) -> np.ndarray:
    """Loss weight per cell: ``object_weight`` for object cells, ``neighbour_weight`` for the
    background cells touching one (8-neighbourhood), 1 for the rest of the background.

    A centre near a cell's edge makes its neighbour almost as right an answer, so a
    ``neighbour_weight`` below 1 stops punishing the model for that near miss.
    """
    objects = targets > 0
    near = np.zeros_like(objects)
    padded = np.pad(objects, ((0, 0), (1, 1), (1, 1)))
    rows, cols = objects.shape[1:]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            near |= padded[:, dy:dy + rows, dx:dx + cols]
    weights = np.where(near, np.float32(neighbour_weight), np.float32(1.0))
    return np.where(objects, np.float32(object_weight), weights).astype(np.float32)


def flip_boxes(boxes: Sequence[Box]) -> tuple[Box, ...]:
    """The boxes of the horizontally mirrored image."""
    return tuple(Box(b.label, 1.0 - b.cx, b.cy, b.w, b.h) for b in boxes)


@dataclass(frozen=True)
class CentroidScore:
    """Centroid matching of one class (or all): true/false positives and misses."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4)}


MATCH_DISTANCE_CELLS = 1.5


def match_centroids(grid_output: np.ndarray, objects: Sequence[Box], spec: CentroidSpec,
                    classes: int, distance: float = MATCH_DISTANCE_CELLS) -> list[CentroidScore]:
    """Per-class scores of one output grid against its labelled objects.

    A detection counts when its centre lies within ``distance`` cells of an unmatched object of
    the same class; detections are taken best first, each matching the nearest such object.
    """
    height, width = grid_output.shape[-3], grid_output.shape[-2]
    tp, fp = np.zeros(classes, int), np.zeros(classes, int)
    free = [(b.label, b.cx * width, b.cy * height) for b in objects]
    for region in decode_regions(grid_output, spec):
        label = region.channel - 1
        if not 0 <= label < classes:
            continue
        cx, cy = (region.x0 + region.x1) / 2, (region.y0 + region.y1) / 2
        near = [(np.hypot(x - cx, y - cy), i) for i, (c, x, y) in enumerate(free) if c == label]
        near = [(d, i) for d, i in near if d <= distance]
        if near:
            free.pop(min(near)[1])
            tp[label] += 1
        else:
            fp[label] += 1
    fn = np.bincount([c for c, _, _ in free], minlength=classes)
    return [CentroidScore(int(tp[c]), int(fp[c]), int(fn[c])) for c in range(classes)]


def total(scores: Sequence[Sequence[CentroidScore]], classes: int) -> list[CentroidScore]:
    """Per-class sums over images, then the sum of all classes last."""
    per_class = [CentroidScore(sum(s[c].tp for s in scores), sum(s[c].fp for s in scores),
                               sum(s[c].fn for s in scores)) for c in range(classes)]
    overall = CentroidScore(sum(s.tp for s in per_class), sum(s.fp for s in per_class),
                            sum(s.fn for s in per_class))
    return [*per_class, overall]


def augment_cells(rng: np.random.Generator, pixels: np.ndarray, targets: np.ndarray,
                  max_shift_cells: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Randomly mirrored, shifted (by whole cells, wrapping) and recoloured copies of a batch.

    Shifting by whole cells moves every object's centre cell exactly with it, so the per-cell
    targets stay right without going back to the boxes; colours get a per-channel gain and
    offset so the model learns shapes rather than the colours of a small data set.
    """
    out = pixels.copy()
    cells = targets.copy()
    for n in range(len(out)):
        if rng.random() < 0.5:
            out[n], cells[n] = out[n, :, ::-1], cells[n, :, ::-1]
        if rng.random() < 0.5:
            out[n], cells[n] = out[n, ::-1], cells[n, ::-1]
        dy, dx = rng.integers(-max_shift_cells, max_shift_cells + 1, size=2)
        out[n] = np.roll(out[n], (dy * STRIDE, dx * STRIDE), axis=(0, 1))
        cells[n] = np.roll(cells[n], (dy, dx), axis=(0, 1))
    gain = rng.uniform(0.75, 1.25, size=(len(out), 1, 1, 3))
    offset = rng.uniform(-25, 25, size=(len(out), 1, 1, 3))
    out = np.clip(out.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    return out, cells
