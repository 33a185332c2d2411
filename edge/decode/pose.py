"""MoveNet single pose: 17 COCO keypoints ``[1, 1, 17, 3]`` as ``(y, x, score)``, y and x
normalised to the input. Pure numpy."""

from __future__ import annotations

import numpy as np

COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                  "right_ankle")


def is_single_pose(shape: tuple[int, ...]) -> bool:
    """``[1, 1, 17, 3]`` or ``[1, 17, 3]``."""
    return tuple(shape) in ((1, 1, len(COCO_KEYPOINTS), 3), (1, len(COCO_KEYPOINTS), 3))


def decode_single_pose(raw: np.ndarray, input_size: tuple[int, int]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(points (17, 2) x, y in input pixels, scores (17,))``."""
    rows = np.asarray(raw, np.float32).reshape(-1, 3)
    width, height = input_size
    points = np.stack([rows[:, 1] * width, rows[:, 0] * height], axis=1)
    return points.astype(np.float32), rows[:, 2].copy()
