"""What a centroid detector's firmware needs to decode its output, and the code that does it.

A model whose training record (packed by ``edge-model quantize``) says ``"task": "detect"`` ends
in a ``[1, H, W, 1 + classes]`` int8 grid of per-cell class scores. Its ``main.cpp`` runs
``edge_centroids_decode`` (``firmware_export/c/edge_centroids.h``, the C twin of
:mod:`edge.decode.centroids`) after each inference and streams one detection record per
centroid; everything it needs is computed here, in Python, with the Python decoder's own rules:
the threshold's quantized value (:func:`~edge.decode.centroids.quantize_threshold`) and the
protocol's uint16 score of every int8 value, so the firmware does no floating point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.decode.centroids import CentroidSpec, quantize_threshold
from edge.errors import ExportError
from edge.model.types import Model
from edge.serial.protocol import LabelRecord, detections_room, quantize_score
from firmware_export.codegen.render import Code, render

DETECT_TASK = "detect"
CENTROIDS_HEADER = "edge_centroids.h"
MAX_CELLS = 65535  # edge_centroids.h's uint16_t cell indices


@dataclass(frozen=True)
class CentroidValues:
    """The decoder's settings for one model, as the firmware's constants.

    Attributes:
        grid_height, grid_width, channels: the output grid ``[H, W, K]`` (K = 1 + classes).
        scale, zero_point: the output's quantization.
        threshold: the smallest class score a cell needs (0-1).
        threshold_q: its quantized value, clamped to int8.
        max_detections: the most detections per record (0 when no value reaches the threshold).
        max_reason: why that many, for the generated comment.
        scores_q16: the protocol's uint16 score of each int8 value -128..127.
    """

    grid_height: int
    grid_width: int
    channels: int
    scale: float
    zero_point: int
    threshold: float
    threshold_q: int
    max_detections: int
    max_reason: str
    scores_q16: tuple[int, ...]

    def spec(self) -> CentroidSpec:
        """The Python decoder's spec that gives the same records."""
        return CentroidSpec(self.scale, self.zero_point, self.threshold, self.max_detections)


def firmware_record_room() -> int:
    """Detections that fit one frame of the firmware's record (label, score, latency)."""
    return detections_room(LabelRecord(seq=0, time_ms=0, label=0, score=0.0, latency_ms=0.0,
                                       detections=()))


def is_detector(record: Mapping[str, Any] | None) -> bool:
    """Whether a model's training record names a centroid detector."""
    return record is not None and record.get("task") == DETECT_TASK


def record_threshold(record: Mapping[str, Any] | None) -> float:
    """The threshold the record carries (``threshold``, 0 < t <= 1), else the decoder's default.

    Raises:
        ExportError: the record's threshold is not a number in (0, 1].
    """
    value = (record or {}).get("threshold", CentroidSpec.threshold)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ExportError(f"the model's training record has threshold {value!r}; it must be a "
                          "number in (0, 1]: re-quantize the model with edge-model quantize")
    return float(value)


def centroid_values(model: Model, record: Mapping[str, Any] | None) -> CentroidValues | None:
    """The decoder's settings for ``model``, or None when its record names no detector.

    Raises:
        ExportError: the record says ``detect`` but the output is not an int8 grid the C
            decoder can take.
    """
    if not is_detector(record):
        return None
    tensor = model.output_tensors[0]
    shape = tuple(tensor.shape)
    where = f"{model.source}: a detector (task 'detect' in its training record)"
    quant = tensor.quantization
    if tensor.dtype != "int8" or quant is None or len(quant.scale) != 1:
        raise ExportError(f"{where} must have an int8 output quantized per tensor, not "
                          f"{tensor.dtype}; quantize it with edge-model quantize")
    if len(shape) != 4 or shape[0] != 1 or not 2 <= shape[3] <= 255:
        raise ExportError(f"{where} must end in a [1, H, W, 1 + classes] grid with 2 to 255 "
                          f"channels, not {list(shape)}")
    if shape[1] * shape[2] > MAX_CELLS:
        raise ExportError(f"{where} has {shape[1]}x{shape[2]} cells; the firmware's decoder "
                          f"takes at most {MAX_CELLS}: export a smaller input size")
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    if not math.isfinite(scale) or scale <= 0:
        raise ExportError(f"{where} has output scale {scale}; re-quantize it")
    threshold = record_threshold(record)
    threshold_q = quantize_threshold(threshold, scale, zero_point)
    room = min(CentroidSpec.max_detections, firmware_record_room())
    reason = (f"the decoder's {CentroidSpec.max_detections} or what fits one frame "
              f"({firmware_record_room()}), the fewer")
    if threshold_q > 127:
        room, reason = 0, "none, as no int8 value reaches the threshold"
    scores = tuple(quantize_score(min(max(scale * (v - zero_point), 0.0), 1.0))
                   for v in range(-128, 128))
    return CentroidValues(shape[1], shape[2], shape[3], scale, zero_point, threshold,
                          int(min(max(threshold_q, -128), 127)), room, reason, scores)


def detector_code(values: CentroidValues) -> dict[str, Code]:
    """The pieces of ``main.cpp.in`` for a detector (see :func:`classifier_code`)."""
    rows = [", ".join(str(q) for q in values.scores_q16[i:i + 12])
            for i in range(0, len(values.scores_q16), 12)]
    table = "".join(f"\n    {row}," for row in rows) + "\n"
    helpers = render("detect_helpers.cpp.in", grid_height=values.grid_height,
                     grid_width=values.grid_width, channels=values.channels,
                     threshold=Code(f"{values.threshold:g}"), threshold_q=values.threshold_q,
                     max_reason=Code(values.max_reason), max_detections=values.max_detections,
                     scale=Code(f"{values.scale:.9g}"), zero_point=values.zero_point,
                     score_table=Code(table))
    return {"streams": Code("the objects\n// it finds (edge_centroids.h decodes the per-cell "
                            "grid into centroids, one detection each)"),
            "decoder_include": Code(f'#include "{CENTROIDS_HEADER}"\n'),
            "helpers": Code(helpers), "publish": Code(render("detect_publish.cpp.in"))}


def classifier_code() -> dict[str, Code]:
    """The pieces of ``main.cpp.in`` for a classifier: the top label."""
    return {"streams": Code("the top label"), "decoder_include": Code(""),
            "helpers": Code(render("classify_helpers.cpp.in")),
            "publish": Code(render("classify_publish.cpp.in"))}
