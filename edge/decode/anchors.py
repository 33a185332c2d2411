"""Anchor-based SSD heads without post-processing, in MediaPipe's layout (BlazeFace). Pure numpy.

The model gives, per anchor, raw box and keypoint offsets ``[A, 4 + 2K]`` and one score logit
``[A, 1]``. Anchors follow MediaPipe's ``SsdAnchorsCalculator`` with a fixed anchor size:
one grid per distinct stride (consecutive layers of the same stride share a grid), two anchors
per layer at each cell (aspect ratio 1 and the interpolated scale), centres at ``(i + 0.5) /
cells``. BlazeFace short range: strides 8, 16, 16, 16 on 128x128, so 16x16x2 + 8x8x6 = 896.

Decoding follows ``TensorsToDetectionsCalculator``: with the scales equal to the input size,
``x = raw_x / width + anchor_x`` (likewise y, keypoints), ``w = raw_w / width``, ``h = raw_h /
height`` (anchor width and height are 1); the score is the sigmoid of the logit clipped to
[-100, 100]. Then NMS (MediaPipe blends overlapping boxes; plain NMS keeps the best one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.decode.boxes import BoxSet, empty_boxes, xywh_to_xyxy
from edge.decode.nms import nms

BLAZEFACE_STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
LOGIT_CLIP = 100.0
BLAZEFACE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion",
                       "left_ear_tragion")


@dataclass(frozen=True)
class AnchorSpec:
    """An anchor head: the input size and its anchors' centres.

    Attributes:
        input_size: ``(width, height)``.
        centres: ``(A, 2)`` float32 anchor centres ``x, y``, normalised to the input.
        keypoints: keypoints per anchor in the raw output (``(values - 4) / 2``).
    """

    input_size: tuple[int, int]
    centres: np.ndarray
    keypoints: int


def anchor_centres(input_size: tuple[int, int], strides: Sequence[int] = BLAZEFACE_STRIDES,
                   per_layer: int = ANCHORS_PER_LAYER) -> np.ndarray:
    """``(A, 2)`` anchor centres ``x, y`` normalised to the input, in the model's order."""
    width, height = input_size
    groups: list[tuple[int, int]] = []  # (stride, layers)
    for stride in strides:
        if groups and groups[-1][0] == stride:
            groups[-1] = (stride, groups[-1][1] + 1)
        else:
            groups.append((stride, 1))
    parts = []
    for stride, layers in groups:
        cols, rows = -(-width // stride), -(-height // stride)
        ys, xs = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                             indexing="ij")
        cell = np.stack([xs.ravel(), ys.ravel()], axis=1)
        parts.append(np.repeat(cell, layers * per_layer, axis=0))
    return np.concatenate(parts).astype(np.float32)


def anchor_spec(box_shape: tuple[int, ...], score_shape: tuple[int, ...],
                input_size: tuple[int, int]) -> AnchorSpec | None:
    """The spec when ``[1, A, 4+2K]`` and ``[1, A, 1]`` (or ``[1, A]``) fit MediaPipe's
    anchors for this input size, else None."""
    if len(box_shape) != 3 or box_shape[0] != 1 or box_shape[2] < 4 or box_shape[2] % 2:
        return None
    if tuple(score_shape) not in ((1, box_shape[1], 1), (1, box_shape[1])):
        return None
    centres = anchor_centres(input_size)
    if len(centres) != box_shape[1]:
        return None
    return AnchorSpec(input_size, centres, (box_shape[2] - 4) // 2)


def decode_anchors(raw_boxes: np.ndarray, raw_scores: np.ndarray, spec: AnchorSpec, *,
                   threshold: float = 0.5, iou_threshold: float = 0.3,
                   max_detections: int = 100) -> BoxSet:
    """Boxes (class 0) and their keypoints in input pixels, best first, after NMS."""
    logits = np.clip(np.asarray(raw_scores, np.float32).reshape(-1), -LOGIT_CLIP, LOGIT_CLIP)
    scores = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow
    alive = np.flatnonzero(scores >= threshold)
    if alive.size == 0:
        return empty_boxes()
    width, height = spec.input_size
    raw = np.asarray(raw_boxes, np.float32).reshape(len(logits), -1)[alive]
    centres = spec.centres[alive]
    size = np.array([width, height], np.float32)
    xywh = np.empty((len(alive), 4), np.float32)
    xywh[:, :2] = raw[:, :2] / size + centres
    xywh[:, 2:] = raw[:, 2:4] / size
    boxes = xywh_to_xyxy(xywh) * np.array([width, height, width, height], np.float32)
    points = raw[:, 4:4 + 2 * spec.keypoints].reshape(len(alive), spec.keypoints, 2)
    points = (points / size + centres[:, None, :]) * size
    found = BoxSet(boxes, scores[alive].astype(np.float32), np.zeros(len(alive), np.int64),
                   points.astype(np.float32))
    keep = nms(found.boxes, found.scores, None, iou_threshold=iou_threshold,
               max_detections=max_detections)
    return found.take(keep)
