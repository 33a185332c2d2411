"""The result every box decoder returns, and the box conversions they share. Pure numpy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BoxSet:
    """Objects found in one frame, best first, in the model input's pixels.

    Attributes:
        boxes: ``(N, 4)`` float32 ``xmin, ymin, xmax, ymax``.
        scores: ``(N,)`` float32 in [0, 1].
        classes: ``(N,)`` int64 class indices (the model's own numbering).
        keypoints: ``(N, K, 2)`` float32 ``x, y`` per object (BlazeFace's six face points), or
            ``(N, 0, 2)``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, keep: np.ndarray) -> BoxSet:
        """The objects at ``keep`` (indices or a mask), in that order."""
        points = self.keypoints[keep] if len(self.keypoints) else self.keypoints
        return BoxSet(self.boxes[keep], self.scores[keep], self.classes[keep], points)


def empty_boxes() -> BoxSet:
    return BoxSet(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre x, y, width, height -> ``xmin, ymin, xmax, ymax`` (float32)."""
    out = np.empty(xywh.shape, np.float32)
    half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
    out[:, 0] = xywh[:, 0] - half_w
    out[:, 1] = xywh[:, 1] - half_h
    out[:, 2] = xywh[:, 0] + half_w
    out[:, 3] = xywh[:, 1] + half_h
    return out
