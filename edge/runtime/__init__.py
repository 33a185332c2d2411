"""Image models on LiteRT, on the CPU (XNNPACK) or the Coral Edge TPU: classifiers, detectors,
segmenters and pose models (``edge.runtime.postprocess.DecodeOptions``/``FrameResult``).

The public API, stable for ``edge-run`` and other callers::

    from edge.runtime import Classifier, Classification

    with Classifier.open("model.tflite", threads=None, backend=None, delegate=None,
                         device=None, labels=None, resize="squash", mean=None, std=None) as clf:
        clf.input_size        # (width, height) of the model input
        clf.labels            # tuple[str, ...], one per class ("" unknown), () if none
        clf.backend_name      # "ai-edge-litert 2.3.0"
        clf.delegate_name     # "none" or "edgetpu"
        clf.threads           # interpreter threads in use
        for frame in frames:  # uint8 RGB (or color="bgr", RGBA/BGRA, grayscale)
            results = clf.classify(frame, color="rgb", top_k=5, threshold=0.0)
            # -> list[Classification(index: int, label: str, score: float)], best first
            clf.invoke_ms     # duration of that frame's invoke

    # Any kind (classify, detect, segment, pose; clf.kind says which), in the frame's pixels:
    result = clf.label(frame, color="rgb", options=DecodeOptions(threshold=None, iou=None,
                       max_detections=100, classes=None))
    # -> FrameResult(kind, frame_size, predictions, detections, keypoints, segments, mask)

    # The two halves of classify(), for callers that want the tensor or the raw scores:
    tensor = clf.preprocess(frame, color="rgb")  # (1, H, W, C), reused buffer, model's dtype
    scores = clf.run(tensor)                     # float32 dequantized scores, one per class

``Classifier.open`` takes a path (Coral's ``model.tflite@usb:0`` works), the model's bytes or
an :class:`edge.model.Model`. It raises the errors of :mod:`edge.errors` only (``ModelError``,
``BackendError``, ``DelegateError``, ``InterpreterError``, ``LabelError``, ``PreprocessError``),
each with a one-line message a user can act on. Importing this package imports no interpreter
package; :mod:`edge.runtime.backends` does, when a classifier is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.runtime.interpreter import Classifier
    from edge.runtime.postprocess import Classification
    from edge.runtime.preprocess import InputSpec

__all__ = ["Classification", "Classifier", "InputSpec"]

# Imported on first use (they import OpenCV), so edge.runtime.policy is light to import.
_LAZY = {"Classifier": "edge.runtime.interpreter", "Classification": "edge.runtime.postprocess",
         "InputSpec": "edge.runtime.preprocess"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
