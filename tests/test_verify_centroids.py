"""The stream check of a centroid detector's --verify, on plain data: it passes only on equal
records, fails on any field that differs, and warns when nothing was detected to compare."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from firmware_export.codegen.detector import CentroidValues, detector_code
from firmware_export.verify.centroids import python_record, streamed_detections
from firmware_export.verify.report import FAIL, PASS, WARN

SCALE, ZERO = 1 / 256, -128


def values(threshold_q: int = 0, max_detections: int = 19) -> CentroidValues:
    scores = tuple(round(min(max(SCALE * (v - ZERO), 0.0), 1.0) * 65535) for v in range(-128, 128))
    return CentroidValues(4, 6, 3, SCALE, ZERO, 0.5, threshold_q, max_detections, "test", scores)


def grid() -> np.ndarray:
    """Background everywhere but a two-cell region of class 1 and one cell of class 2."""
    cells = np.full((1, 4, 6, 3), -128, np.int8)
    cells[..., 0] = 127
    for y, x, channel, value in ((1, 1, 1, 100), (2, 2, 1, 60), (3, 5, 2, 20)):
        cells[0, y, x] = (-128, -128, -128)
        cells[0, y, x, channel] = value
    return cells


def wire(box: tuple[float, ...]) -> list[int]:
    return [int(v * 65535 + 0.5) for v in box]


def test_the_python_record_of_a_grid() -> None:
    record = python_record(grid().reshape(-1), values(), (48, 32))
    assert record.detections is not None and len(record.detections) == 2
    best, other = record.detections
    assert (best.label, other.label) == (1, 2) and (record.label, record.score) == (1, best.score)
    # as the wire carries them: uint16 fractions of the frame
    assert wire(best.box) == wire((1 / 6, 1 / 4, 3 / 6, 3 / 4))  # cells 1..2 x 1..2
    assert wire(other.box) == wire((5 / 6, 3 / 4, 1.0, 1.0))
    assert round(best.score * 256) == 228  # value 100 + 128


def test_equal_records_pass_and_any_difference_fails() -> None:
    outputs = [grid(), grid()]
    expected = [python_record(o, values(), (48, 32)) for o in outputs]
    assert streamed_detections(expected, outputs, values(), (48, 32), "host").status == PASS
    assert expected[0].detections is not None
    first = expected[0].detections[0]
    moved = replace(expected[0], detections=(first._replace(box=(0.0, *first.box[1:])),
                                             *expected[0].detections[1:]))
    check = streamed_detections([moved, expected[1]], outputs, values(), (48, 32), "host")
    assert check.status == FAIL and check.values["differ"] == [0]
    relabelled = replace(expected[1], label=2)
    assert streamed_detections([expected[0], relabelled], outputs, values(), (48, 32),
                               "host").status == FAIL
    assert streamed_detections(expected[:1], outputs, values(), (48, 32), "host").status == FAIL
    classifier = [replace(r, detections=None) for r in expected]
    assert streamed_detections(classifier, outputs, values(), (48, 32), "host").status == FAIL


def test_nothing_detected_only_warns() -> None:
    empty = np.full((1, 4, 6, 3), -128, np.int8)
    empty[..., 0] = 127
    record = python_record(empty, values(), (48, 32))
    assert record.detections == () and record.label == 0xFFFF and record.score == 0.0
    check = streamed_detections([record], [empty], values(), (48, 32), "host")
    assert check.status == WARN and "no detection was compared" in check.detail


def test_no_int8_value_reaching_the_threshold_keeps_none() -> None:
    record = python_record(grid(), values(127, 0), (48, 32))
    assert record.detections == ()
    code = detector_code(values(127, 0))
    assert "constexpr size_t kMaxDetections = 0;" in code["helpers"]
    assert "g_found[kMaxDetections > 0 ? kMaxDetections : 1]" in code["helpers"]
