"""Centroid detectors end to end: ``edge-model train --task detect``, quantize, evaluate, and the
runtime recognising the kind (edge-classify, edge-run) with a real trained, quantized model.

The detector comes from tests/detector_fixture.py (cached by code hash). Layout errors are
checked without TensorFlow: they fail before a model is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import classify, run
from edge.cli.model import main as edge_model
from edge.errors import TrainingError
from edge.modelbuild.detect import cell_targets, cell_weights
from edge.modelbuild.detect_sizing import activation_floor, candidates
from edge.modelbuild.train_detect import (
    DetectSettings,
    best_threshold,
    detect_plan,
    size_for_aspect,
)
from edge.modelbuild.yolo_layout import Box

# --- pure pieces --------------------------------------------------------------------------


def test_sizes_keep_the_aspect_in_whole_cells() -> None:
    assert size_for_aspect(128, (160, 120)) == (128, 96)
    assert size_for_aspect(96, (640, 480)) == (96, 72)
    assert size_for_aspect(64, (100, 300)) == (64, 192)
    assert size_for_aspect(100, (200, 100)) == (96, 48)


def test_targets_and_weights_on_a_wide_grid() -> None:
    targets = cell_targets([[Box(1, 0.99, 0.01, 0.1, 0.1), Box(0, 0.3, 0.6, 0.1, 0.1)]], (5, 3))
    assert targets.shape == (1, 3, 5)
    assert targets[0, 0, 4] == 2 and targets[0, 1, 1] == 1 and targets.sum() == 3
    weights = cell_weights(targets, 10.0, 0.25)
    assert weights[0, 0, 4] == 10 and weights[0, 1, 1] == 10
    assert weights[0, 0, 3] == 0.25 and weights[0, 2, 2] == 0.25  # touching an object's cell
    assert weights[0, 2, 4] == 1.0 and weights[0, 0, 0] == 0.25
    assert np.array_equal(cell_weights(targets, 10.0), np.where(targets > 0, 10.0, 1.0))


def test_the_threshold_is_chosen_on_scores_and_ties_take_the_lower() -> None:
    grid = np.zeros((1, 4, 4, 3), np.float32)
    grid[..., 0] = 1.0
    grid[0, 1, 1] = (0.35, 0.65, 0.0)  # a true object, scored 0.65
    grid[0, 3, 3] = (0.45, 0.0, 0.55)  # a false one, scored 0.55
    boxes = [(Box(0, 1.5 / 4, 1.5 / 4, 0.1, 0.1),)]
    f1, threshold = best_threshold(grid, boxes, 2, (0.3, 0.5, 0.6, 0.7))
    assert (f1, threshold) == (1.0, 0.6)
    f1, threshold = best_threshold(grid, boxes, 2, (0.7, 0.8))
    assert (f1, threshold) == (0.0, 0.7)


def test_plan_and_settings() -> None:
    plan = detect_plan(DetectSettings(), 480)
    assert plan.epochs == 48 and plan.rule.min_epochs == 24 and plan.learning_rate == 2e-3
    assert detect_plan(DetectSettings(), 497).epochs == 45
    assert detect_plan(DetectSettings(), 60).epochs == 120
    assert detect_plan(DetectSettings(epochs=7, patience=2), 480).rule.patience == 2
    with pytest.raises(TrainingError, match="multiples of 8"):
        DetectSettings(size=(100, 96))


def test_board_candidates_largest_first_and_the_arena_floor() -> None:
    found = candidates((160, 120))
    assert found[0] == (1.0, (320, 240)) and (0.35, (64, 48)) in found
    keys = [a * w * h for a, (w, h) in found]
    assert keys == sorted(keys, reverse=True)
    # 0.35 at 128x96: input 36,864 B and block 1's 8 + 48 channels at 64x48 (172,032 B)
    assert activation_floor(0.35, (128, 96)) == 64 * 48 * 8 * 7
    assert activation_floor(1.0, (320, 240)) > 217_088


# --- bad data: one line, exit 2, before any model is built -------------------------------


def _yolo(root: Path, label: str) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("nut\nbolt\n")
    for i in range(3):
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((48, 64, 3), 90, np.uint8))
        (root / "labels" / f"{i}.txt").write_text(label)
    return root


@pytest.mark.parametrize(("label", "needle"), [
    ("2 0.5 0.5 0.1 0.1\n", "labels/0.txt:1: class 2"),
    ("0 1.5 0.5 0.1 0.1\n", "labels/0.txt:1:"),
    ("0 0.5 0.5\n", "labels/0.txt:1:"),
])
def test_bad_labels_everywhere_are_one_line_and_exit_2(tmp_path: Path, label: str, needle: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    data = _yolo(tmp_path / "data", label)
    code = edge_model(["-q", "train", str(data), str(tmp_path / "m.keras")])  # auto: detect
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("edge-model: error")] \
        == [err.strip().splitlines()[-1]]


def test_task_detect_on_class_folders_says_what_the_layout_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cats").mkdir()
    code = edge_model(["train", str(tmp_path), str(tmp_path / "m.keras"), "--task", "detect"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "not the YOLO layout" in err[0] and "labels/NAME.txt" in err[0]


# --- a real trained detector (cached) -----------------------------------------------------


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    pytest.importorskip("tensorflow", reason="needs TensorFlow (pip install 'edge-labels[build]')")
    pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is needed")
    from tests.detector_fixture import trained_detector

    return trained_detector()


@pytest.mark.slow
def test_quantize_keeps_the_task_threshold_and_labels(detector) -> None:  # type: ignore[no-untyped-def]
    from edge.model import read_model
    from edge.model.labels import embedded_record
    from edge.modelbuild.keras_file import read_metadata

    trained = read_metadata(detector.keras)
    assert trained is not None and trained["task"] == "detect"
    assert trained["input_size"] == [64, 48] and trained["classes"] == ["disc", "cross"]
    assert 0.3 <= trained["threshold"] <= 0.7
    content = detector.tflite.read_bytes()
    record = embedded_record(content)
    assert record == {"classes": ["disc", "cross"], "input_size": [64, 48], "task": "detect",
                      "threshold": trained["threshold"],
                      "data": {"split": {"val": 0.1, "test": 0.1}}}
    model = read_model(content)
    assert model.labels == ("background", "disc", "cross")
    assert list(model.output_tensors[0].shape) == [1, 6, 8, 3]
    assert model.output_tensors[0].dtype == "int8"


@pytest.mark.slow
def test_evaluate_reports_centroid_matching_float_and_int8(
        detector, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert edge_model(["evaluate", str(detector.keras), str(detector.data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "detect" and doc["match_distance_cells"] == 1.5
    assert doc["cell_pixels"] == [20.0, 20.0]  # 160x120 images on an 8x6 grid
    assert set(doc["scores"]) == {"float", "int8"}
    for name in ("float", "int8"):
        scores = doc["scores"][name]
        assert set(scores) == {"disc", "cross", "all"}
        total = scores["all"]
        assert total["tp"] + total["fn"] == doc["objects"] > 0
        assert total["tp"] == scores["disc"]["tp"] + scores["cross"]["tp"]
    # briefly trained and tiny, yet far from chance; int8 close to float
    assert doc["scores"]["float"]["all"]["f1"] >= 0.3
    assert abs(doc["scores"]["int8"]["all"]["f1"] - doc["scores"]["float"]["all"]["f1"]) <= 0.15
    assert edge_model(["evaluate", str(detector.tflite), str(detector.data)]) == 0
    text = capsys.readouterr().out
    assert "within 1.5 cells (a cell is 20x20 image pixels)" in text and "int8:" in text


@pytest.mark.slow
def test_the_runtime_opens_it_as_a_centroid_detector(
        detector, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edge.model import read_model
    from edge.model.labels import embedded_record
    from edge.runtime.kinds import model_kind

    model = read_model(detector.tflite)
    kind = model_kind(model)
    assert (kind.kind, kind.layout, kind.classes) == ("detect", "centroids", 2)
    assert kind.threshold == embedded_record(model.content)["threshold"]
    images = sorted((detector.data / "images").glob("*.jpg"))[:6]
    assert classify.main(["--model", str(detector.tflite), *map(str, images), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["kind"], doc["layout"]) == ("detect", "centroids")
    found = 0
    for report, image in zip(doc["images"], images, strict=True):
        assert (report["width"], report["height"]) == (160, 120)
        truth = [line.split() for line in (detector.data / "labels" / f"{image.stem}.txt")
                 .read_text().splitlines()]
        for d in report["detections"]:
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120
            assert d["label"] in ("disc", "cross") and d["index"] in (1, 2)
            # a box is whole 20-pixel cells of the 160x120 frame
            assert all(v % 20 == 0 for v in (x0, y0, x1, y1))
            centre = ((x0 + x1) / 2, (y0 + y1) / 2)
            found += any(np.hypot(float(t[1]) * 160 - centre[0], float(t[2]) * 120 - centre[1])
                         <= 30 for t in truth)
    assert found >= 1
    # edge-run: the events carry the detections, boxes in frame pixels
    folder = tmp_path / "frames"
    folder.mkdir()
    for image in images[:3]:
        cv2.imwrite(str(folder / f"{image.stem}.png"), cv2.imread(str(image)))
    assert run.main(["--camera", str(folder), "--model", str(detector.tflite), "-q"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in events] == ["detect"] * 3
    assert (events[0]["width"], events[0]["height"]) == (160, 120)
    assert any(e["detections"] for e in events)
    # --threshold overrides the record's
    assert classify.main(["--model", str(detector.tflite), str(images[0]), "--threshold",
                          "0.999", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["detections"] == []


@pytest.mark.slow
def test_board_fit_is_the_planners_on_a_real_untrained_detector() -> None:
    pytest.importorskip("tensorflow", reason="needs TensorFlow (pip install 'edge-labels[build]')")
    from edge.boards import get_board
    from edge.modelbuild.detect_sizing import planned_fit

    board = get_board("nano33ble")
    fits, arena, model_bytes = planned_fit(0.35, (64, 48), 2, board)
    assert fits and 0 < arena < 217_088 and 20_000 < model_bytes < 100_000
    # the arithmetic floor never exceeds what the planner finds
    assert activation_floor(0.35, (64, 48)) <= arena
