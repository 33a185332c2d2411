"""The annotation on preview frames (pure drawing on arrays).

Every kind of result is drawn on the picture it belongs to:

* ``classify``: the top labels with their scores;
* ``detect``: a box per detection with its label and score;
* ``segment``: the class mask blended over the frame (class 0, background, left clear), with
  the largest classes and their shares;
* ``pose``: the keypoints and the skeleton between them (COCO's 17 names, as MoveNet's);

and at the bottom, fps and latency. Boxes and points are in the original frame's pixels
(``LabelEvent.frame_size``) and are scaled to the streamed picture here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge.events import DETECT, POSE, SEGMENT, Detection, Keypoint, LabelEvent

_FONT = cv2.FONT_HERSHEY_SIMPLEX
KEYPOINT_MIN_SCORE = 0.2  # points below this are not drawn (MoveNet's own demos use 0.1-0.3)
MASK_ALPHA = 0.5

# COCO's keypoint skeleton, by name (MoveNet and most single-pose models use these names).
SKELETON = (
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
    ("right_eye", "right_ear"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)


def palette(count: int = 256) -> np.ndarray:
    """``count`` distinct BGR colours, one per class index (PASCAL VOC's bit-interleaved map,
    so DeepLab's classes get their usual colours); index 0 is black."""
    colours = np.zeros((count, 3), np.uint8)
    for index in range(count):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours[index] = (b, g, r)
    return colours


_PALETTE = palette()


def colour(index: int) -> tuple[int, int, int]:
    """The BGR colour of class ``index`` (never black: class 0 gets white)."""
    b, g, r = (int(v) for v in _PALETTE[index % len(_PALETTE)])
    return (b, g, r) if index % len(_PALETTE) else (255, 255, 255)


def fit_width(rgb: np.ndarray, width: int) -> np.ndarray:
    """``rgb`` as BGR scaled to ``width`` pixels wide (aspect kept)."""
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else cv2.cvtColor(
        rgb, cv2.COLOR_GRAY2BGR)
    if bgr.shape[1] == width:
        return np.ascontiguousarray(bgr)
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)


def _text(image: np.ndarray, text: str, x: int, y: int, scale: float,
          background: tuple[int, int, int] = (0, 0, 0)) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = min(max(0, x), max(0, image.shape[1] - w - 8))
    y = min(max(h + 4, y), image.shape[0] - base)
    cv2.rectangle(image, (x, y - h - 4), (x + w + 8, y + base), background, -1)
    light = sum(background) > 384
    cv2.putText(image, text, (x + 4, y), _FONT, scale, (0, 0, 0) if light else (255, 255, 255),
                1, cv2.LINE_AA)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def draw_detections(bgr: np.ndarray, detections: Sequence[Detection], sx: float, sy: float,
                    scale: float) -> None:
    """A box and ``label score`` per detection; coordinates scaled by (sx, sy)."""
    limit = 4 * max(bgr.shape)  # far outside the picture: clipped, never an overflow
    thickness = max(1, round(2 * scale))
    for d in detections:
        if not _finite(*d.box, d.score):
            continue
        x0, y0, x1, y1 = (int(np.clip(v, -limit, limit)) for v in
                          (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
        c = colour(d.index)
        cv2.rectangle(bgr, (x0, y0), (x1, y1), c, thickness)
        _text(bgr, f"{d.label or d.index} {d.score:.2f}", x0, y0 - 2, scale * 0.8, c)


def draw_mask(bgr: np.ndarray, mask: np.ndarray) -> None:
    """Blend the class colours of ``mask`` (any grid size, scaled to the picture) over ``bgr``;
    class 0 (background) stays clear."""
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or not mask.size:
        return
    indices = np.asarray(mask)
    if indices.dtype != np.uint8:  # wider or float grids: wrapped onto the palette
        indices = np.mod(np.nan_to_num(indices).astype(np.int64), len(_PALETTE)).astype(np.uint8)
    grid = cv2.resize(indices, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_NEAREST)
    shown = grid != 0
    if not shown.any():
        return
    blended = cv2.addWeighted(bgr, 1.0 - MASK_ALPHA, _PALETTE[grid], MASK_ALPHA, 0.0)
    bgr[shown] = blended[shown]


def draw_pose(bgr: np.ndarray, keypoints: Sequence[Keypoint], sx: float, sy: float,
              scale: float, min_score: float = KEYPOINT_MIN_SCORE) -> None:
    """The skeleton's bones between confident points, then the points themselves."""
    limit = 4 * max(bgr.shape)
    points = {k.name: (int(np.clip(k.x * sx, -limit, limit)), int(np.clip(k.y * sy, -limit,
                                                                          limit)))
              for k in keypoints if _finite(k.x, k.y, k.score) and k.score >= min_score}
    thickness = max(1, round(2 * scale))
    for a, b in SKELETON:
        if a in points and b in points:
            cv2.line(bgr, points[a], points[b], (0, 255, 255), thickness, cv2.LINE_AA)
    radius = max(2, round(4 * scale))
    for point in points.values():
        cv2.circle(bgr, point, radius, (0, 0, 255), -1, cv2.LINE_AA)


def _headline(event: LabelEvent) -> list[str]:
    if event.kind == DETECT:
        counts = event.counts()
        return [", ".join(f"{n} {label}" for label, n in sorted(
            counts.items(), key=lambda kv: -kv[1]))] if counts else ["(nothing found)"]
    if event.kind == SEGMENT:
        return [f"{s.label or s.index}  {s.share:.0%}" for s in event.segments[:3]] or \
            ["(no class)"]
    if event.kind == POSE:
        seen = sum(k.score >= KEYPOINT_MIN_SCORE for k in event.keypoints)
        return [f"pose: {seen} of {len(event.keypoints)} points"]
    return [f"{p.label or p.index}  {p.score:.2f}" for p in event.predictions[:3]] or \
        ["(below threshold)"]


def annotate(bgr: np.ndarray, event: LabelEvent, fps: float) -> np.ndarray:
    """Draw ``event``'s result and the numbers onto ``bgr`` in place; returns it.

    Args:
        bgr: the streamed picture (already scaled, e.g. by :func:`fit_width`).
        event: the frame's label event; boxes and points are in ``event.frame_size`` pixels
            (the picture's own size when that is unknown).
        fps: labels per second, for the bottom line.
    """
    height, width = bgr.shape[:2]
    frame_w, frame_h = event.frame_size or (width, height)
    sx, sy = width / max(frame_w, 1), height / max(frame_h, 1)
    scale = max(0.4, width / 800)
    if event.kind == SEGMENT and event.mask is not None:
        draw_mask(bgr, event.mask)
    if event.kind == DETECT:
        draw_detections(bgr, event.detections, sx, sy, scale)
    if event.kind == POSE:
        draw_pose(bgr, event.keypoints, sx, sy, scale)
    step = int(28 * scale / 0.6)
    y = step
    for line in _headline(event):
        _text(bgr, line, 4, y, scale * 1.2)
        y += step
    _text(bgr, f"{fps:.1f} fps  {event.latency_ms:.1f} ms", 4, height - 8, scale)
    return bgr
