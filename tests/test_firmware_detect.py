"""Centroid detectors in the exported firmware (issue 20, points 3 and 4).

Must hold: ``edge-export`` of a model whose training record says ``"task": "detect"`` writes a
``main.cpp`` that decodes the int8 grid with ``edge_centroids.h`` (threshold from the record,
else the Python decoder's default) and streams one detection per centroid; a classifier's
firmware is unchanged (its golden files are in test_codegen.py). ``--verify`` runs it on the
64-bit host TFLM and on the Cortex-M4 under QEMU: the records ``edge.serial.protocol`` decodes
from the firmware's stream equal the Python decoder's records on the same int8 outputs, field
by field, with detections in them; the predicted arena stays within [1.000, 1.005] of the real
minimum; instructions per inference are reported. Models: small detectors trained here
(tests/detector_models.py), square with two classes and 128x96 with four.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edge.boards import get_board
from edge.errors import ExportError
from edge.model import read_model
from edge.model.labels import TRAINING_RECORD_MEMBER, embedded_record, with_embedded_files
from edge.serial.protocol import quantize_score
from firmware_export.cli.export import main as export_main
from firmware_export.codegen.detector import centroid_values, firmware_record_room
from firmware_export.export import export_model
from firmware_export.tflm.build import Library
from firmware_export.verify.ladder import verify_export
from firmware_export.verify.report import FAIL, PASS, WARN, VerifyReport
from tests.conftest import ROOT
from tests.detector_models import ODD, SHAPES, SQUARE, DetectorShape, detector_model, scenes
from tests.tflm_support import tflm_library, tflm_tree

tf = pytest.importorskip("tensorflow", reason="the test detectors are built with tensorflow")
pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")

DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"
HOST, ARM = "host-64 (reference)", "cortex-m4 (cmsis-nn)"


@pytest.fixture(scope="module")
def detectors() -> dict[str, Path]:
    return {shape.name: detector_model(tf, shape) for shape in SHAPES}


@pytest.fixture(scope="module")
def libraries() -> list[Library]:
    return [tflm_library("host-64"), tflm_library("cortex-m4", "cmsis-nn")]


def with_record(content: bytes, record: dict[str, object], labels: list[str]) -> bytes:
    """``content`` with another archive appended: readers take the last one."""
    return with_embedded_files(content, labels,
                               {TRAINING_RECORD_MEMBER: json.dumps(record).encode()})


def test_the_export_decodes_the_grid(detectors: dict[str, Path], tmp_path: Path) -> None:
    result = export_model(detectors[SQUARE.name], "nano33ble", tmp_path / "fw")
    values = result.detector
    assert values is not None
    assert (values.grid_height, values.grid_width, values.channels) == (12, 12, 3)
    # softmax output: scale 1/256, zero point -128; the threshold chosen on validation travels
    # in the record, and the firmware's is the first int8 value whose score reaches it
    record = embedded_record(detectors[SQUARE.name].read_bytes())
    assert record is not None and 0.3 <= record["threshold"] <= 0.7
    assert (values.scale, values.zero_point, values.threshold) == (1 / 256, -128,
                                                                   record["threshold"])
    assert values.threshold_q == math.ceil(record["threshold"] * 256 - 1e-9) - 128
    assert values.max_detections == firmware_record_room() == 19
    main = (result.out / "src" / "main.cpp").read_text(encoding="utf-8")
    assert '#include "edge_centroids.h"' in main and "edge_centroids_decode(" in main
    assert f"constexpr int8_t kThresholdQ = {values.threshold_q};" in main
    assert "constexpr size_t kMaxDetections = 19;" in main
    table = main.split("kScoreQ16[256] = {", 1)[1].split("};", 1)[0]
    scores = [int(v) for v in table.replace(",", " ").split()]
    assert len(scores) == 256 and scores[0] == 0 and scores[128] == 32768  # 0.5
    assert scores[255] == quantize_score(255 / 256) == 65279
    header = ROOT / "firmware_export" / "c" / "edge_centroids.h"
    assert (result.out / "src" / "edge_centroids.h").read_bytes() == header.read_bytes()
    assert json.loads((result.out / "edge-export.json").read_text())["model_file"]
    assert result.to_dict()["detector"]["grid"] == [12, 12, 3]


def test_a_classifier_gets_no_decoder(tmp_path: Path) -> None:
    result = export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw")
    assert result.detector is None and result.to_dict()["detector"] is None
    assert not (result.out / "src" / "edge_centroids.h").exists()
    main = (result.out / "src" / "main.cpp").read_text(encoding="utf-8")
    assert "edge_centroids" not in main and "streams the top label" in main


def test_the_threshold_travels_with_the_model(detectors: dict[str, Path]) -> None:
    content = detectors[ODD.name].read_bytes()
    labels = ["background", *ODD.kinds]
    record = {"classes": labels, "task": "detect"}
    strict = centroid_values(read_model(with_record(content, {**record, "threshold": 0.8},
                                                    labels)), {**record, "threshold": 0.8})
    assert strict is not None and strict.threshold_q == 77  # ceil(0.8 * 256) - 128
    assert (strict.grid_height, strict.grid_width, strict.channels) == (12, 16, 5)
    never = centroid_values(read_model(content), {**record, "threshold": 1.0})
    assert never is not None and never.max_detections == 0 and never.threshold_q == 127
    assert centroid_values(read_model(content), {**record, "task": "classify"}) is None
    with pytest.raises(ExportError, match="threshold"):
        centroid_values(read_model(content), {**record, "threshold": "high"})


def test_a_detect_record_on_a_classifier_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "not_a_grid.tflite"
    model.write_bytes(with_record(DEMO_MODEL.read_bytes(), {"task": "detect"}, []))
    code = export_main([str(model), "--board", "nano33ble", "--out", str(tmp_path / "fw")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "task 'detect'" in err and "Traceback" not in err
    assert not (tmp_path / "fw").exists()


def verify_detector(path: Path, shape: DetectorShape, out: Path) -> VerifyReport:
    result = export_model(path, "nano33ble", out)
    return verify_export(result.model, result.model_path, result.out,
                         get_board("nano33ble", kind="mcu"),
                         [tflm_tree("reference"), tflm_tree("cmsis-nn")], result.arena,
                         detector=result.detector, inputs=scenes(path, shape, 4))


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_firmware_records_equal_the_python_decoder(
        shape: DetectorShape, detectors: dict[str, Path], libraries: list[Library],
        tmp_path: Path) -> None:
    report = verify_detector(detectors[shape.name], shape, tmp_path / "fw")
    assert report.ok, [c for c in report.checks if c.status == FAIL]
    for build in (HOST, ARM):
        check = report.find("streamed detections", build)
        assert check is not None and check.status == PASS, check
        assert check.values["records"] == 4 and check.values["differ"] == []
        assert sum(check.values["detections"]) > 0, check  # not a vacuous comparison
        assert check.values["detections"] == check.values["expected"]
        arena = report.find("minimal arena", build)
        assert arena is not None and arena.status == PASS
        assert 1.0 <= arena.values["ratio"] <= 1.005
        outputs = report.find("outputs = pip interpreter", build)
        assert outputs is not None and outputs.status == PASS
    sections = report.find("ELF sections", ARM)
    assert sections is not None and sections.status == PASS
    instructions = report.find("instructions per inference", ARM)
    assert instructions is not None and instructions.values["instructions"] > 1e6
    per_frame = report.find("instructions per frame", ARM)  # + decoding, encoding, writing
    assert per_frame is not None and "centroid decoding" in per_frame.detail
    assert per_frame.values["instructions"] > instructions.values["instructions"]
    # LiteRT rounds otherwise; on a per-cell softmax that may exceed the classifiers' bound
    # (these barely trained nets: up to 85 LSB), which warns and says what it changes
    litert = report.find("outputs vs LiteRT")
    assert litert is not None and litert.status in (PASS, WARN)
    assert 0 <= litert.values["centroids_identical"] <= 4


@pytest.mark.slow
def test_verify_through_the_cli(detectors: dict[str, Path], libraries: list[Library],
                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command as a user runs it (its own random inputs): every check passes, the stream
    check says how many detections it compared."""
    code = export_main([str(detectors[SQUARE.name]), "--board", "nano33ble", "--out",
                        str(tmp_path / "fw"), "--verify", "--tflm",
                        str(tflm_tree("reference").root), "--tflm",
                        str(tflm_tree("cmsis-nn").root), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document["verify"]
    by_key = {(c["check"], c["build"]): c for c in document["verify"]["checks"]}
    for build in (HOST, ARM):
        stream = by_key[("streamed detections", build)]
        assert stream["status"] in (PASS, WARN) and stream["differ"] == []
        assert stream["records"] == 3
        assert 1.0 <= by_key[("minimal arena", build)]["ratio"] <= 1.005
    assert by_key[("instructions per inference", ARM)]["instructions"] > 1e6
    record = embedded_record(detectors[SQUARE.name].read_bytes())
    assert record is not None and document["detector"]["threshold"] == record["threshold"]


def test_scenes_are_int8_inputs(detectors: dict[str, Path]) -> None:
    inputs = scenes(detectors[ODD.name], ODD, 2)
    assert [x.shape for x in inputs] == [(1, 96, 128, 3)] * 2
    assert all(x.dtype == np.int8 for x in inputs) and not np.array_equal(*inputs)
