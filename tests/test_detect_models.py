"""Detectors, a segmenter and a pose model nobody here made, against reference decodes written
in this file from each model's own documentation (../shared/data/README.md gives the facts):

* YOLOv8n (Ultralytics): LetterBox with grey 114, RGB / 255 quantized by the input's own
  parameters; output [1, 84, 8400] = centre x, y, w, h normalised + 80 sigmoid scores; per
  candidate its best class; class-wise greedy NMS at IoU 0.45; scale_boxes back.
* BlazeFace short range (MediaPipe): bilinear resize, [-1, 1] input, 896 anchors (strides 8,
  16, 16, 16), offsets / 128 around the anchor, sigmoid scores >= 0.5, NMS at 0.3.
* DeepLabV3 (class index per pixel) and MoveNet (y, x, score normalised to the input), fed
  bilinearly resized pixels as TF's resize does.

Besides the shared photos, the tests make photos of their own: mirrored, pasted onto a larger
canvas at an offset, shrunk, cropped; boxes must move the way the photo did.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.runtime import Classifier
from edge.runtime.postprocess import DecodeOptions
from tests.test_decode import mediapipe_anchors, naive_iou, naive_nms

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = DATA / "models"
pytestmark = pytest.mark.skipif(not (MODELS / "yolov8n_full_integer_quant.tflite").is_file(),
                                reason=f"the shared models are not in {MODELS}")
litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is needed")


def photo(name: str = "grace_hopper.bmp") -> np.ndarray:
    image = cv2.imread(str(DATA / "images" / name))
    assert image is not None
    return image


def own_photos() -> dict[str, tuple[np.ndarray, object]]:
    """Photos made here, each with the function mapping an original box onto it."""
    base = photo()
    h, w = base.shape[:2]
    canvas = np.random.default_rng(7).integers(0, 256, (900, 1300, 3), dtype=np.uint8)
    canvas[150:150 + h, 600:600 + w] = base
    return {
        "original": (base, lambda b: b),
        "mirrored": (base[:, ::-1].copy(), lambda b: [w - b[2], b[1], w - b[0], b[3]]),
        "pasted": (canvas, lambda b: [b[0] + 600, b[1] + 150, b[2] + 600, b[3] + 150]),
        "shrunk": (cv2.resize(base, (w * 3 // 5, h * 3 // 5), interpolation=cv2.INTER_AREA),
                   lambda b: [v * 3 / 5 for v in b]),
    }


def invoke(model: Path, tensor: np.ndarray) -> list[np.ndarray]:
    interpreter = litert.Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def input_quantization(model: Path) -> tuple[float, int, float, int]:
    interpreter = litert.Interpreter(model_path=str(model))
    scale, zero = interpreter.get_input_details()[0]["quantization"]
    out_scale, out_zero = interpreter.get_output_details()[0]["quantization"]
    return (scale, zero, out_scale, out_zero)


def yolo_reference(image_bgr: np.ndarray) -> list[tuple[int, float, list[float]]]:
    model = MODELS / "yolov8n_full_integer_quant.tflite"
    in_scale, in_zero, out_scale, out_zero = input_quantization(model)
    h, w = image_bgr.shape[:2]
    r = min(640 / h, 640 / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = (640 - nw) / 2, (640 - nh) / 2
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    boxed = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT,
                               value=(114, 114, 114))
    rgb = boxed[:, :, ::-1].astype(np.float32) / 255.0
    q = np.clip(np.round(rgb / in_scale + in_zero), -128, 127).astype(np.int8)[None]
    out = (invoke(model, q)[0][0].astype(np.float32) - out_zero) * out_scale  # (84, 8400)
    boxes, scores, classes = [], [], []
    for i in range(out.shape[1]):
        column = out[:, i]
        c = int(np.argmax(column[4:]))
        if column[4 + c] > 0.25:
            cx, cy, bw, bh = (column[:4] * 640).tolist()
            boxes.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            scores.append(float(column[4 + c]))
            classes.append(c)
    keep = naive_nms(boxes, scores, classes, 0.45, 300)
    result = []
    for i in keep:
        b = boxes[i]
        mapped = [(b[0] - left) / r, (b[1] - top) / r, (b[2] - left) / r, (b[3] - top) / r]
        mapped = [min(max(v, 0.0), (w, h)[k % 2]) for k, v in enumerate(mapped)]
        result.append((classes[i], scores[i], mapped))
    return result


def matches(ours, reference, min_iou=0.9) -> None:
    """Same classes, and each reference box has one of ours of its class within ``min_iou``."""
    assert sorted(d.index for d in ours) == sorted(c for c, _, _ in reference)
    for c, _score, box in reference:
        best = max(naive_iou(d.box, box) for d in ours if d.index == c)
        assert best >= min_iou, (c, box, [d.box for d in ours if d.index == c])


@pytest.fixture(scope="module")
def yolo_model():
    with Classifier.open(MODELS / "yolov8n_full_integer_quant.tflite") as clf:
        yield clf


def test_yolov8n_finds_the_person_and_the_tie_like_the_reference(yolo_model):
    assert (yolo_model.kind.kind, yolo_model.kind.layout) == ("detect", "yolo")
    assert yolo_model.resize == "letterbox" and len(yolo_model.labels) == 80
    image = photo()
    result = yolo_model.label(image, color="bgr")
    labels = {d.label: d.score for d in result.detections}
    assert set(labels) == {"person", "tie"}
    assert labels["person"] == pytest.approx(0.9, abs=0.05)
    matches(result.detections, yolo_reference(image))


@pytest.mark.parametrize("name", ["mirrored", "pasted", "shrunk"])
def test_yolov8n_on_photos_made_here(yolo_model, name):
    base = yolo_model.label(photo(), color="bgr").detections
    image, move = own_photos()[name]
    result = yolo_model.label(image, color="bgr")
    matches(result.detections, yolo_reference(image))
    assert result.frame_size == (image.shape[1], image.shape[0])
    person = max((d for d in result.detections if d.label == "person"), key=lambda d: d.score)
    original = max((d for d in base if d.label == "person"), key=lambda d: d.score)
    assert naive_iou(person.box, move(list(original.box))) >= 0.85


def test_yolov8n_options_filter_and_limit(yolo_model):
    image = photo()
    only = yolo_model.label(image, color="bgr", options=DecodeOptions(classes=frozenset({"tie"})))
    assert [d.label for d in only.detections] == ["tie"]
    one = yolo_model.label(image, color="bgr", options=DecodeOptions(max_detections=1))
    assert [d.label for d in one.detections] == ["person"]
    many = yolo_model.label(image, color="bgr", options=DecodeOptions(threshold=0.05))
    assert len(many.detections) > 2
    assert [p.label for p in many.predictions][:2] == ["person", "tie"]  # headline: by best


def blazeface_reference(image_bgr: np.ndarray) -> list[list[float]]:
    model = MODELS / "face_detection_short_range.tflite"
    h, w = image_bgr.shape[:2]
    rgb = cv2.resize(image_bgr, (128, 128), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    tensor = ((rgb.astype(np.float32) - 127.5) / 127.5)[None]
    outputs = invoke(model, tensor)
    raw = next(o for o in outputs if o.shape[-1] == 16)[0]
    logits = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
    anchors = mediapipe_anchors()
    boxes, scores = [], []
    for i in range(896):
        score = 1 / (1 + np.exp(-np.clip(np.float64(logits[i]), -100, 100)))
        if score < 0.5:
            continue
        cx = raw[i, 0] / 128 + anchors[i, 0]
        cy = raw[i, 1] / 128 + anchors[i, 1]
        bw, bh = raw[i, 2] / 128, raw[i, 3] / 128
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        scores.append(float(score))
    return [boxes[i] for i in naive_nms(boxes, scores, [0] * len(boxes), 0.3, 100)]


@pytest.mark.parametrize("name", ["original", "mirrored", "pasted", "shrunk"])
def test_blazeface_finds_one_face(name):
    image, _ = own_photos()[name]
    with Classifier.open(MODELS / "face_detection_short_range.tflite") as clf:
        assert clf.kind.layout == "anchors"
        result = clf.label(image, color="bgr")
    reference = blazeface_reference(image)
    if name == "pasted":  # the face is small in a noisy 1300x900 squash: whatever is found agrees
        assert len(result.detections) == len(reference)
    else:
        assert len(reference) == 1 and [d.label for d in result.detections] == ["face"]
    for d, box in zip(result.detections, reference, strict=True):
        assert naive_iou(d.box, box) >= 0.9


def test_deeplab_finds_the_persons_pixels():
    model = MODELS / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    labels = DATA / "labels" / "pascal_voc_segmentation_labels.txt"
    image = photo()
    with Classifier.open(model, labels=labels) as clf:
        assert (clf.kind.kind, clf.kind.layout) == ("segment", "segment")
        result = clf.label(image, color="bgr")
        squashed = cv2.resize(image, (513, 513), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        reference = invoke(model, np.ascontiguousarray(squashed)[None])[0][0]
        shares = {s.label: s.share for s in result.segments}
        assert shares["person"] == pytest.approx(np.mean(reference == 15), abs=1e-9)
        assert shares["person"] == pytest.approx(0.66, abs=0.03)
        assert set(shares) == {"person", "background"}
        # A photo of our own: the portrait beside an equally wide grey area.
        wide = np.full((image.shape[0], image.shape[1] * 2, 3), 128, np.uint8)
        wide[:, :image.shape[1]] = image
        beside = {s.label: s.share for s in clf.label(wide, color="bgr").segments}
        assert beside["person"] == pytest.approx(shares["person"] / 2, abs=0.05)


def test_movenet_finds_17_keypoints_on_the_person():
    model = MODELS / "movenet_single_pose_lightning_ptq.tflite"
    image = photo()
    h, w = image.shape[:2]
    with Classifier.open(model) as clf:
        result = clf.label(image, color="bgr")
    squashed = cv2.resize(image, (192, 192), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    reference = invoke(model, np.ascontiguousarray(squashed)[None])[0].reshape(17, 3)
    assert len(result.keypoints) == 17 and result.kind == "pose"
    for point, (y, x, score) in zip(result.keypoints, reference, strict=True):
        assert (point.x, point.y, point.score) == pytest.approx((x * w, y * h, score), abs=1e-3)
    named = {k.name: k.score for k in result.keypoints}
    for name in ("left_eye", "right_eye", "left_shoulder", "right_shoulder"):
        assert 0.45 <= named[name] <= 0.85, name
    assert max(named[n] for n in ("left_hip", "right_hip", "left_ankle")) < 0.3
