"""SSD models ending in a real ``TFLite_Detection_PostProcess`` op, built the way TF's Object
Detection API exports them (../shared/data/README.md): a SavedModel in which a
``tf.function(experimental_implements=...)`` stands for the op, with constant weights, converted
by ``TFLiteConverter.from_saved_model`` with custom ops allowed.

The serving signature's output names decide the order of the model's outputs (the converter
sorts them), so each variant lists boxes, classes, scores and count in another order. Built once
per source version and cached (tests/cache.py).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache, artefact_lock

SIZE = 32
GRID = 4  # 4x4 cells, one anchor each
CLASSES = 3
# Signature keys per variant: sorted, they give the model's output order.
VARIANTS = {
    "od-api-order": ("detection_boxes", "detection_classes", "detection_scores",
                     "num_detections"),  # boxes, classes, count, scores
    "scores-first": ("b_boxes", "c_classes", "a_scores", "d_count"),
    "count-first": ("d_boxes", "b_classes", "c_scores", "a_count"),
    "regular-nms": ("detection_boxes", "detection_classes", "detection_scores",
                    "num_detections"),
}


def postprocess_signature(max_detections: int, regular: bool) -> str:
    attrs = [("max_detections", "i", max_detections), ("max_classes_per_detection", "i", 1),
             ("detections_per_class", "i", max_detections),
             ("use_regular_nms", "b", str(regular).lower()),
             ("nms_score_threshold", "f", 0.05), ("nms_iou_threshold", "f", 0.5),
             ("num_classes", "i", CLASSES), ("y_scale", "f", 10.0), ("x_scale", "f", 10.0),
             ("h_scale", "f", 5.0), ("w_scale", "f", 5.0)]
    return " ".join(['name: "TFLite_Detection_PostProcess"'] + [
        f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, t, v in attrs])


def ssd_models(tf: Any) -> dict[str, bytes]:
    """Every variant of :data:`VARIANTS` as .tflite bytes (cached)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]
    folder = artefact_cache("ssd-models") / key
    paths = {name: folder / f"{name}.tflite" for name in VARIANTS}
    with artefact_lock(folder):
        for name, path in paths.items():
            if not path.is_file():
                atomic_write_bytes(path, _build(tf, name))
    return {name: p.read_bytes() for name, p in paths.items()}


def anchors() -> np.ndarray:
    """``(16, 4)`` anchors ``y, x, h, w``: one per cell of a 4x4 grid, a quarter of the input."""
    centres = (np.arange(GRID) + 0.5) / GRID
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    size = np.full(GRID * GRID, 1 / GRID)
    return np.stack([ys.ravel(), xs.ravel(), size, size], axis=1).astype(np.float32)


def _build(tf: Any, name: str) -> bytes:
    keys = VARIANTS[name]

    @tf.function(experimental_implements=postprocess_signature(6, name == "regular-nms"))
    def postprocess(boxes: Any, scores: Any, anchor_boxes: Any) -> Any:
        # The converter replaces this body with the op; these are placeholders.
        return (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))

    rng = np.random.default_rng(sum(map(ord, name)))
    box_kernel = tf.constant(rng.normal(0, 0.3, (8, 8, 3, 4)).astype(np.float32))
    score_kernel = tf.constant(rng.normal(0, 0.5, (8, 8, 3, CLASSES + 1)).astype(np.float32))
    anchor_boxes = tf.constant(anchors())

    class Detector(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
        def serve(self, x: Any) -> Any:
            boxes = tf.reshape(tf.nn.conv2d(x, box_kernel, 8, "VALID"), [1, GRID * GRID, 4])
            logits = tf.nn.conv2d(x, score_kernel, 8, "VALID")
            scores = tf.nn.sigmoid(tf.reshape(logits, [1, GRID * GRID, CLASSES + 1]))
            b, c, s, n = postprocess(boxes, scores, anchor_boxes)
            return dict(zip(keys, (b, c, s, n), strict=True))

    module = Detector()
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.allow_custom_ops = True
        return bytes(converter.convert())
