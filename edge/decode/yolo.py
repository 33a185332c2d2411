"""Ultralytics YOLO heads: v8 and later ``[1, 4+C, N]``, v5 ``[1, N, 5+C]``. Pure numpy.

v8+ (Ultralytics' TFLite export): rows 0-3 are box centre x, y, width, height, rows ``4..4+C``
the class scores (already through the sigmoid; no objectness). v5: per candidate ``x, y, w, h,
objectness, C class scores``; a candidate's confidence is objectness times its class score.
Coordinates are normalised to the input (TFLite exports) or in input pixels (some other
exports): values above :data:`NORMALISED_MAX` mean pixels.

Each candidate keeps its best class (Ultralytics' ``multi_label=False``); candidates under the
score threshold are dropped *before* anything else is computed, in the quantized domain for int8
outputs (the dequantization is monotonic), so an 8,400-candidate head costs a max over one
array, then work only on the survivors; then class-wise NMS (:mod:`edge.decode.nms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.decode.boxes import BoxSet, empty_boxes, xywh_to_xyxy
from edge.decode.nms import nms
from edge.decode.quantization import dequantize, quantize_threshold

V8 = "v8"
V5 = "v5"
V8_TRANSPOSED = "v8-transposed"
NORMALISED_MAX = 2.0


@dataclass(frozen=True)
class YoloSpec:
    """One YOLO output: its version, its class count and its quantization.

    Attributes:
        version: ``v8`` (also v9-v11, the same head) or ``v5`` (objectness).
        classes: number of classes ``C``.
        scale: output quantization scale (0 for float outputs).
        zero_point: output quantization zero point.
    """

    version: str
    classes: int
    scale: float = 0.0
    zero_point: int = 0


def yolo_spec(shape: tuple[int, ...], classes_hint: int | None = None) -> YoloSpec | None:
    """The YOLO layout of an output shape, or None.

    ``[1, K, N]`` with ``K < N`` is v8 (``C = K - 4``). ``[1, N, K]`` with ``N > K`` is v5
    (``C = K - 5``) unless ``classes_hint`` (the labels' count) says ``K = 4 + C``: a v8 head
    exported transposed.
    """
    if len(shape) != 3 or shape[0] != 1:
        return None
    _, a, b = shape
    if 5 <= a < b:
        return YoloSpec(V8, a - 4)
    if 6 <= b < a:
        if classes_hint is not None and b == 4 + classes_hint:
            return YoloSpec(V8_TRANSPOSED, classes_hint)
        return YoloSpec(V5, b - 5)
    return None


def decode_yolo(raw: np.ndarray, spec: YoloSpec, input_size: tuple[int, int], *,
                threshold: float = 0.25, iou_threshold: float = 0.45,
                max_detections: int = 100) -> BoxSet:
    """Boxes in input pixels, best first, after class-wise NMS.

    Args:
        raw: the output as the interpreter gives it (quantized or float), batch of one.
        spec: from :func:`yolo_spec`, with the output's quantization.
        input_size: ``(width, height)`` of the model input.
        threshold: least confidence kept.
        iou_threshold: NMS overlap limit.
        max_detections: most boxes returned.
    """
    rows = raw[0] if spec.version == V8 else raw[0].T  # (4 [+1] + C, N) either way
    if spec.version == V5:
        boxes, scores, classes = _candidates_v5(rows, spec, threshold)
    else:
        boxes, scores, classes = _candidates_v8(rows, spec, threshold)
    if len(scores) == 0:
        return empty_boxes()
    boxes = xywh_to_xyxy(boxes)
    if float(np.abs(boxes).max()) <= NORMALISED_MAX:
        boxes *= np.array([*input_size, *input_size], np.float32)
    keep = nms(boxes, scores, classes, iou_threshold=iou_threshold,
               max_detections=max_detections)
    return BoxSet(boxes[keep], scores[keep], classes[keep])


def _candidates_v8(rows: np.ndarray, spec: YoloSpec, threshold: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    class_rows = rows[4:4 + spec.classes]
    best_raw = class_rows.max(axis=0)
    alive = np.flatnonzero(best_raw > quantize_threshold(threshold, spec.scale, spec.zero_point))
    picked = class_rows[:, alive]
    classes = picked.argmax(axis=0).astype(np.int64)
    scores = dequantize(best_raw[alive], spec.scale, spec.zero_point)
    boxes = dequantize(rows[:4, alive].T, spec.scale, spec.zero_point)
    return boxes, scores, classes


def _candidates_v5(rows: np.ndarray, spec: YoloSpec, threshold: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    objectness_raw = rows[4]
    alive = np.flatnonzero(objectness_raw > quantize_threshold(threshold, spec.scale,
                                                               spec.zero_point))
    objectness = dequantize(objectness_raw[alive], spec.scale, spec.zero_point)
    class_scores = dequantize(rows[5:5 + spec.classes, alive], spec.scale, spec.zero_point)
    classes = class_scores.argmax(axis=0).astype(np.int64)
    scores = objectness * class_scores[classes, np.arange(len(alive))]
    keep = scores > threshold
    boxes = dequantize(rows[:4, alive[keep]].T, spec.scale, spec.zero_point)
    return boxes, scores[keep].astype(np.float32), classes[keep]
