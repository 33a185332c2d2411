"""A centroid detector's firmware stream against the Python decoder, record by record.

The firmware decodes each int8 output with ``edge_centroids.h`` and streams one record with a
detection per centroid. The reference is the Python runtime's own path on the same output:
:func:`edge.decode.centroids.decode_centroids` -> a detect :class:`~edge.events.LabelEvent` ->
:func:`edge.sinks.serial.label_record` -> the values the wire carries
(:func:`edge.serial.protocol.quantize`). Label, score and every detection (label, score, box)
must be equal.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge.decode.centroids import decode_centroids
from edge.events import DETECT, LabelEvent
from edge.serial.protocol import LabelRecord, quantize
from edge.sinks.serial import label_record
from firmware_export.codegen.detector import CentroidValues
from firmware_export.verify.report import FAIL, PASS, WARN, Check


def python_record(output: np.ndarray, detector: CentroidValues,
                  frame_size: tuple[int, int]) -> LabelRecord:
    """The record the Python runtime sends for ``output`` (fields the firmware sends too);
    ``output`` is the grid's bytes in any shape (the probe's are flat)."""
    grid = np.asarray(output).reshape(1, detector.grid_height, detector.grid_width,
                                      detector.channels)
    detections = tuple(decode_centroids(grid, detector.spec(), (), frame_size))
    event = LabelEvent(seq=0, frame_index=0, capture_ns=0, latency_ms=0.0, wall_time=0.0,
                       predictions=(), kind=DETECT, detections=detections,
                       frame_size=frame_size)
    record = replace(label_record(event, with_text=False), frame=None)
    return quantize(record, "binary")


def compared(record: LabelRecord) -> tuple[object, ...]:
    """The fields both sides set: label, score and the detections."""
    return record.label, record.score, record.detections


def streamed_detections(records: list[LabelRecord], outputs: list[np.ndarray],
                        detector: CentroidValues, frame_size: tuple[int, int],
                        label: str) -> Check:
    """One check: the firmware's decoded records equal the Python decoder's on its outputs."""
    expected = [python_record(o, detector, frame_size) for o in outputs]
    counts = [len(r.detections or ()) for r in records]
    expected_counts = [len(r.detections or ()) for r in expected]
    wrong = [i for i, (a, b) in enumerate(zip(records, expected, strict=False))
             if compared(a) != compared(b)]
    values = {"records": len(records), "detections": counts, "expected": expected_counts,
              "differ": wrong}
    if len(records) != len(expected) or wrong or any(r.detections is None for r in records):
        first = wrong[0] if wrong else None
        detail = (f"record {first}: firmware {compared(records[first])}, Python "
                  f"{compared(expected[first])}" if first is not None else
                  f"{len(records)} records for {len(expected)} inputs")
        return Check("streamed detections", label, FAIL, f"edge_centroids.h and "
                     f"edge.decode.centroids disagree: {detail}", values)
    total = sum(counts)
    text = (f"{len(records)} records, {total} detections {counts} decoded by "
            "edge.serial.protocol: label, score and every box equal the Python decoder's on "
            f"the same int8 outputs (threshold {detector.threshold:g} = "
            f"{detector.threshold_q} quantized)")
    if total == 0:
        return Check("streamed detections", label, WARN, text + "; no cell reached the "
                     "threshold on these inputs, so no detection was compared", values)
    return Check("streamed detections", label, PASS, text, values)
