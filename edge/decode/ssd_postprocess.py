"""Outputs of the ``TFLite_Detection_PostProcess`` op (SSD, EfficientDet-Lite, Model Maker,
Coral). Pure numpy.

The op itself (run by LiteRT) decodes the anchors and does the NMS; it has four outputs in a
fixed order: boxes ``[1, N, 4]`` (``ymin, xmin, ymax, xmax`` normalised to the input), classes
``[1, N]`` (index without the background class, as float), scores ``[1, N]`` and the count
``[1]``. A model may list them in any order (TF2's exporter sorts them by name): the roles are
given by where each model output comes from in the op (:data:`ROLES`), found in the graph by
:mod:`edge.runtime.kinds`.
"""

from __future__ import annotations

import numpy as np

from edge.decode.boxes import BoxSet, empty_boxes

BOXES, CLASSES, SCORES, COUNT = "boxes", "classes", "scores", "count"
ROLES = (BOXES, CLASSES, SCORES, COUNT)  # the op's own output order


def decode_postprocess(outputs: dict[str, np.ndarray], input_size: tuple[int, int], *,
                       threshold: float = 0.5, max_detections: int = 100) -> BoxSet:
    """The op's detections in input pixels, best first.

    Args:
        outputs: the four outputs by role (:data:`ROLES`).
        input_size: ``(width, height)`` of the model input.
        threshold: least score kept.
        max_detections: most boxes returned.
    """
    count = int(np.asarray(outputs[COUNT]).reshape(-1)[0])
    scores = np.asarray(outputs[SCORES], np.float32).reshape(-1)
    count = max(0, min(count, len(scores)))
    if count == 0:
        return empty_boxes()
    scores = scores[:count]
    classes = np.rint(np.asarray(outputs[CLASSES], np.float32).reshape(-1)[:count])
    yxyx = np.asarray(outputs[BOXES], np.float32).reshape(-1, 4)[:count]
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= threshold][:max_detections]
    width, height = input_size
    boxes = yxyx[order][:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
    return BoxSet(boxes.astype(np.float32), scores[order], classes[order].astype(np.int64))
