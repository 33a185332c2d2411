"""Every label names its input: frames carry their source (and a folder's frame its file) into
the JSON events and the serial text records; edge-classify takes folders and globs and names
each image; one labels policy; the demo scene's accuracy only for the demo scene's labels.

Real parts throughout: images rendered by the demo scene and written with OpenCV, a video made
with VideoWriter, the bundled demo model on real LiteRT, edge-run and edge-listen as real
processes on real ptys.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import open_source
from edge.cli import classify, run
from edge.demo import model_path
from edge.demo.scene import LABELS, DemoScene
from edge.events import LabelEvent, Prediction
from edge.serial import protocol
from edge.sinks.serial import label_record
from tests.conftest import shared_file
from tests.test_run_serial import run_into_listener

pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """Six demo-scene frames as PNGs (names out of creation order), their true classes."""
    folder = tmp_path_factory.mktemp("scene")
    scene = DemoScene(seed=3, hold_frames=1)
    truths = []
    for k in (5, 3, 0, 4, 1, 2):
        rgb, truth = scene.next_frame()
        cv2.imwrite(str(folder / f"shot_{k}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        truths.append((k, int(truth)))
    (folder / "notes.txt").write_text("not an image")
    return folder, [t for _, t in sorted(truths)]


def test_sources_name_their_frames(scene_folder: tuple[Path, list[int]],
                                   tmp_path: Path) -> None:
    folder, _ = scene_folder
    with open_source(str(folder)) as source:
        frames = [source.read() for _ in range(6)]
    assert [f.file for f in frames] == [str(folder / f"shot_{k}.png") for k in range(6)]  # type: ignore[union-attr]
    assert {f.source for f in frames} == {str(folder)}  # type: ignore[union-attr]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    with open_source(str(video)) as source:
        frames = [source.read() for _ in range(3)]
    assert [(f.source, f.index, f.file) for f in frames] == [(str(video), i, None)  # type: ignore[union-attr]
                                                             for i in range(3)]
    with open_source("demo") as source:
        frame = source.read()
    assert (frame.source, frame.file) == ("demo", None)  # type: ignore[union-attr]


def test_edge_run_events_name_each_file(scene_folder: tuple[Path, list[int]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder, truths = scene_folder
    assert run.main(["--camera", str(folder), "-q"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["file"] for e in events] == [str(folder / f"shot_{k}.png") for k in range(6)]
    assert all(e["source"] == str(folder) for e in events)
    assert [e["frame"] for e in events] == list(range(6))
    assert [e["label"] for e in events] == [LABELS[t] for t in truths]  # the right labels


def test_serial_text_records_carry_the_file_and_binary_frames_do_not_change() -> None:
    predictions = (Prediction(3, "3", 0.9),)
    named = LabelEvent(7, 2, 5_000_000, 1.5, 0.0, predictions, None, "shots", "shots/a b.png")
    plain = LabelEvent(7, 2, 5_000_000, 1.5, 0.0, predictions, None, "0", None)
    line = protocol.encode_text(label_record(named, with_text=True))
    assert line.endswith(b',"file":"a b.png"}\n')
    assert protocol.decode_text_line(line.rstrip(b"\n")).file == "a b.png"  # type: ignore[union-attr]
    assert b"file" not in protocol.encode_text(label_record(plain, with_text=True))
    assert (protocol.encode_binary(label_record(named, with_text=False))
            == protocol.encode_binary(label_record(plain, with_text=False)))
    assert named.as_dict()["file"] == "shots/a b.png" and "file" not in plain.as_dict()
    assert plain.as_dict()["source"] == "0"


@pytest.mark.serial
def test_serial_text_stream_names_the_files(scene_folder: tuple[Path, list[int]]) -> None:
    folder, _ = scene_folder
    sent, code, heard, err = run_into_listener(
        ["--camera", str(folder), "--serial-format", "json", "--quiet"],
        ["--format", "json", "--json", "--max-frames", "6", "--duration", "90"])
    assert sent.returncode == 0, sent.stderr
    assert code == 0, err
    received = [json.loads(line) for line in heard.splitlines()]
    assert [r["file"] for r in received] == [f"shot_{k}.png" for k in range(6)]


def test_edge_classify_takes_folders_and_globs_and_reports_unreadable_images(
        scene_folder: tuple[Path, list[int]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, truths = scene_folder
    (tmp_path / "broken.png").write_bytes(b"not a png")
    second = cv2.imread(str(folder / "shot_1.png"))
    cv2.imwrite(str(tmp_path / "copy.png"), second)
    code = classify.main(["--model", str(model_path()), str(folder), str(tmp_path / "*.png"),
                          "--json", "--top-k", "1"])
    out, err = capsys.readouterr()
    assert code == 2  # one image could not be read: reported, the others classified
    doc = json.loads(out)
    assert doc["labels"] == str(model_path().parent / "labels.txt")  # found beside the model
    names = [Path(r["image"]).name for r in doc["images"]]
    assert names == [f"shot_{k}.png" for k in range(6)] + ["broken.png", "copy.png"]
    labels = [r["results"][0]["label"] for r in doc["images"] if "results" in r]
    assert labels == [LABELS[t] for t in truths] + [LABELS[truths[1]]]
    message = (f"{tmp_path / 'broken.png'}: not a JPEG, PNG, BMP, GIF, WebP, TIFF or PNM "
               "(PBM/PGM/PPM) image, or its header is damaged")
    assert doc["images"][6]["error"] == message
    assert err.splitlines() == [f"edge-classify: error: {message}"]


@pytest.mark.parametrize(("spec", "message"), [
    ("nothing-here/*.jpg", "nothing-here/*.jpg: no image file matches this pattern"),
    ("missing.jpg", "missing.jpg: no such image file or folder; check the path"),
])
def test_edge_classify_names_what_it_cannot_find(capsys: pytest.CaptureFixture[str], spec: str,
                                                 message: str) -> None:
    assert classify.main(["--model", str(model_path()), spec]) == 2
    assert capsys.readouterr().err.splitlines() == [f"edge-classify: error: {message}"]


def test_labels_beside_the_model_are_used_only_when_they_fit(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edge.runtime import Classifier

    model = tmp_path / "m.tflite"
    model.write_bytes(model_path().read_bytes())
    with Classifier.open(model) as clf:
        assert clf.labels == () and clf.labels_origin == ""
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    with Classifier.open(model) as clf:
        assert clf.labels == () and "has 3 labels but the model has 11 classes" in caplog.text
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    with Classifier.open(model) as clf:
        assert clf.labels == LABELS and clf.labels_origin == str(tmp_path / "labels.txt")
    with Classifier.open(model, labels=[str(i) for i in range(11)]) as clf:
        assert clf.labels_origin == "given" and clf.labels[10] == "10"


def test_demo_camera_with_another_model_says_why_there_is_no_accuracy(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    model = shared_file("models/mobilenet_v1_0.25_128_quant.tflite")
    assert run.main(["--camera", "demo", "--model", str(model), "--max-frames", "3",
                     "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["accuracy"] is None
    assert "accuracy" not in err and "truth" not in out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith("--camera demo: no accuracy is reported: the model's 1001 "
                                  "labels ('background', ")
    assert "are not the demo scene's (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, nothing)" in warnings[0]
