"""Non-maximum suppression, once for every detector: greedy, class-wise, vectorised. Pure numpy.

Each round keeps the best remaining box and drops, in one array operation, every remaining box
of the same class overlapping it by more than the IoU threshold; the Python loop runs once per
*kept* box (at most ``max_detections``), never once per candidate. Class-wise suppression shifts
each class's boxes into a region of their own (torchvision's ``batched_nms`` trick), so boxes
of different classes never overlap.
"""

from __future__ import annotations

import numpy as np

# Candidates ranked before suppression: more only cost time (Ultralytics keeps 30,000; after a
# score threshold YOLOv8n has a few hundred).
MAX_CANDIDATES = 5_000


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xmin, ymin, xmax, ymax`` box with each row of ``boxes``."""
    ix = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    iy = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None, *,
        iou_threshold: float = 0.45, max_detections: int = 100) -> np.ndarray:
    """Indices of the boxes kept, best score first.

    Args:
        boxes: ``(N, 4)`` as ``xmin, ymin, xmax, ymax`` (any unit).
        scores: ``(N,)``.
        classes: ``(N,)`` class indices; None suppresses across all boxes.
        iou_threshold: a box overlapping a kept one of its class by more than this is dropped.
        max_detections: stop after keeping this many.
    """
    if len(scores) == 0 or max_detections < 1:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
    work = boxes[order].astype(np.float32, copy=True)
    if classes is not None and len(order) > 1:
        span = float(work.max() - min(work.min(), 0.0)) + 1.0
        work += (classes[order].astype(np.float32) * span)[:, None]
    keep: list[int] = []
    alive = np.arange(len(order))
    while alive.size and len(keep) < max_detections:
        best = alive[0]
        keep.append(int(best))
        rest = alive[1:]
        alive = rest[iou_one_to_many(work[best], work[rest]) <= iou_threshold]
    return order[np.asarray(keep, np.int64)]
