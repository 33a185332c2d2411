"""Every kind through the commands: edge-classify's JSON and table, --masks, --kind, and edge-run's
events (the same fields), --on-change by labels and counts. Real LiteRT and the shared models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import classify, run
from edge.events import DETECT, LabelEvent, Prediction
from edge.sinks.base import LabelSink, OnChangeSink
from tests.kind_models import kind_models

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = DATA / "models"
GRACE = DATA / "images" / "grace_hopper.bmp"
YOLO = MODELS / "yolov8n_full_integer_quant.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
VOC = DATA / "labels" / "pascal_voc_segmentation_labels.txt"
MOVENET = MODELS / "movenet_single_pose_lightning_ptq.tflite"
pytestmark = pytest.mark.skipif(not YOLO.is_file(), reason=f"the shared models are not in {MODELS}")
pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is needed")


def classify_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert classify.main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_detector_json_and_table(capsys):
    doc = classify_json(capsys, "--model", str(YOLO), str(GRACE))
    assert (doc["kind"], doc["layout"], doc["resize"]) == ("detect", "yolo", "letterbox")
    image = doc["images"][0]
    assert image["kind"] == "detect" and (image["width"], image["height"]) == (512, 600)
    assert [d["label"] for d in image["detections"]] == ["person", "tie"]
    assert set(image["detections"][0]) == {"label", "index", "score", "box"}
    assert [r["label"] for r in image["results"]] == ["person", "tie"]
    assert classify.main(["--model", str(YOLO), str(GRACE), "--classes", "tie"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("kind detect (yolo)")
    assert lines[2].split() == ["score", "label", "xmin", "ymin", "xmax", "ymax"]
    assert len(lines) == 4 and lines[3].split()[1] == "tie"
    assert classify.main(["--model", str(YOLO), str(GRACE), "--threshold", "0.99"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].strip() == \
        "(no object scored at least the threshold)"


def test_pose_json_keypoints_in_pixels(capsys):
    doc = classify_json(capsys, "--model", str(MOVENET), str(GRACE))
    points = doc["images"][0]["keypoints"]
    assert len(points) == 17 and set(points[0]) == {"name", "x", "y", "score"}
    eyes = [p for p in points if p["name"].endswith("_eye")]
    assert all(100 < p["x"] < 400 and 100 < p["y"] < 300 for p in eyes)  # a 512x600 portrait


def test_segmenter_shares_and_masks(capsys, tmp_path):
    folder = tmp_path / "masks"
    doc = classify_json(capsys, "--model", str(DEEPLAB), "--labels", str(VOC), str(GRACE),
                        str(GRACE), "--masks", str(folder))
    first, second = doc["images"]
    shares = {s["label"]: s["share"] for s in first["segments"]}
    assert shares["person"] == pytest.approx(0.66, abs=0.03)
    mask = cv2.imread(first["mask"], cv2.IMREAD_UNCHANGED)
    assert mask.shape == (600, 512) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 15}
    assert np.mean(mask == 15) == pytest.approx(shares["person"], abs=0.01)
    overlay = cv2.imread(first["overlay"])
    assert overlay.shape == (600, 512, 3)
    assert Path(second["mask"]).name == "grace_hopper-2.mask.png"  # a name used twice
    assert classify.main(["--model", str(DEEPLAB), "--labels", str(VOC), str(GRACE)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split() == ["pixels", "index", "label"] and "person" in table[3]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the build extra) makes the "
                             "test models")
    folder = tmp_path_factory.mktemp("tiny")
    paths = {}
    for kind, content in kind_models(tf).items():
        paths[kind] = folder / f"{kind}.tflite"
        paths[kind].write_bytes(content)
    return paths


def test_kind_overrides_and_refusals_are_one_line(tiny, capsys, tmp_path):
    image = tmp_path / "noise.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (40, 30, 3), np.uint8))
    # a feature map is refused with its outputs named and --kind...
    assert classify.main(["--model", str(tiny["dense"]), str(image)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "[1, 3, 3, 4]" in err[0] and "--kind" in err[0]
    # ...and read as per-class scores when the user says it is a segmenter
    doc = classify_json(capsys, "--model", str(tiny["dense"]), str(image), "--kind", "segment")
    assert doc["kind"] == "segment"
    assert sum(s["share"] for s in doc["images"][0]["segments"]) == pytest.approx(1.0, abs=1e-4)
    # a kind the outputs do not fit
    assert classify.main(["--model", str(tiny["classifier"]), str(image), "--kind",
                          "detect"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--kind detect was given but its outputs fit no detect layout" \
        in err[0]
    # an embedding is a classifier when the user says so
    doc = classify_json(capsys, "--model", str(tiny["embedding"]), str(image), "--kind",
                        "classify")
    assert doc["kind"] == "classify" and len(doc["images"][0]["results"]) == 3


def test_edge_run_events_carry_the_kind_fields(tmp_path, capsys):
    folder = tmp_path / "shots"
    folder.mkdir()
    grace = cv2.imread(str(GRACE))
    cv2.imwrite(str(folder / "a.png"), grace)
    cv2.imwrite(str(folder / "b.png"), grace[:, ::-1])  # mirrored: the same labels and counts
    cv2.imwrite(str(folder / "c.png"), np.full((300, 400, 3), 90, np.uint8))  # nothing
    cv2.imwrite(str(folder / "d.png"), grace[300:, :])  # the tie and the person's lower half
    args = ["--camera", str(folder), "--model", str(YOLO), "--top-k", "3", "-q"]
    assert run.main(args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["kind"] for e in events] == ["detect"] * 4
    assert [e["counts"] for e in events[:3]] == [{"person": 1, "tie": 1}] * 2 + [{}]
    assert events[0]["label"] == "person" and events[2]["label"] is None
    assert (events[0]["width"], events[0]["height"]) == (512, 600)
    assert events[3]["height"] == 300 and events[3]["detections"]
    mirrored = events[1]["detections"][0]["box"]
    original = events[0]["detections"][0]["box"]
    assert mirrored[0] == pytest.approx(512 - original[2], abs=8)
    # --on-change: the mirrored photo has the same labels and counts: not passed on
    assert run.main([*args, "--on-change"]) == 0
    changed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [e["file"] for i, e in enumerate(events)
                if i == 0 or e["counts"] != events[i - 1]["counts"]]
    assert [e["file"] for e in changed] == expected
    assert [Path(f).name for f in expected[:2]] == ["a.png", "c.png"]


class Collect(LabelSink):
    name = "collect"

    def __init__(self) -> None:
        self.events: list[LabelEvent] = []

    def write(self, event: LabelEvent) -> None:
        self.events.append(event)


def test_on_change_compares_labels_and_counts():
    from edge.events import Detection

    def event(seq: int, labels: list[str]) -> LabelEvent:
        found = tuple(Detection(0, label, 0.9, (0, 0, 1, 1)) for label in labels)
        return LabelEvent(seq, seq, 0, 0.0, 0.0, (Prediction(0, labels[0], 0.9),) if labels
                          else (), kind=DETECT, detections=found)

    sink = Collect()
    on_change = OnChangeSink(sink)
    for seq, labels in enumerate([["person"], ["person"], ["person", "person"], ["person"],
                                  ["person", "dog"], ["dog", "person"], []]):
        on_change.write(event(seq, labels))
    assert [e.seq for e in sink.events] == [0, 2, 3, 4, 6]


@pytest.mark.parametrize(("meta", "needle"), [
    ({"task": "pose", "names": {0: "person"}}, "Ultralytics task 'pose'"),
    ({"task": "detect", "names": {0: "person"}, "end2end": True}, "NMS inside"),
])
def test_ultralytics_metadata_refuses_heads_edge_does_not_read(meta, needle, tmp_path, capsys):
    import io
    import zipfile

    content = YOLO.read_bytes()
    flatbuffer = content[:content.rfind(b"PK\x03\x04")]  # without Ultralytics' own archive
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("temp_meta.txt", repr(meta))
    path = tmp_path / "exported.tflite"
    path.write_bytes(flatbuffer + archive.getvalue())
    assert classify.main(["--model", str(path), str(GRACE)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and needle in err[0] and "nms=False" in err[0]


def test_ultralytics_names_are_the_labels(tmp_path, capsys):
    import io
    import zipfile

    content = YOLO.read_bytes()
    flatbuffer = content[:content.rfind(b"PK\x03\x04")]  # without Ultralytics' own archive
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("metadata.json", repr({"task": "detect", "names": {
            i: f"thing{i}" for i in range(80)}}))
    path = tmp_path / "renamed.tflite"
    path.write_bytes(flatbuffer + archive.getvalue())
    doc = classify_json(capsys, "--model", str(path), str(GRACE))
    assert doc["labels"] == "embedded"
    assert [d["label"] for d in doc["images"][0]["detections"]] == ["thing0", "thing27"]


def test_tflite_metadata_is_read(tiny, tmp_path):
    from edge.model import read_model
    from edge.model.tflite_metadata import read_notes
    from edge.runtime.kinds import model_kind
    from tests.metadata_models import metadata_buffer, with_metadata

    # MediaPipe's own metadata, as shipped
    notes = read_notes(read_model(MODELS / "face_detection_short_range.tflite").metadata)
    assert notes is not None and notes.name == "Short Range Face Detection"
    assert [n.name for n in notes.outputs] == ["raw boxes/keypoints", "scores"]
    # a feature map is a segmenter when the metadata calls it masks, and stays refused otherwise
    plain = tiny["dense"].read_bytes()
    masks = with_metadata(plain, metadata_buffer("seg", [("segmentation_masks", "classes")]))
    other = with_metadata(plain, metadata_buffer("x", [("features", "embedding grid")]))
    assert model_kind(read_model(masks)).kind == "segment"
    assert model_kind(read_model(other)).kind == "dense"
    # damaged metadata is no metadata
    broken = with_metadata(plain, b"\xff" * 40)
    assert read_notes(read_model(broken).metadata) is None
    assert model_kind(read_model(broken)).kind == "dense"
