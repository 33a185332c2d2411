"""The pure decoders of edge.decode on plain arrays, against naive references written here.

The references follow the layouts' own documentation (Ultralytics' LetterBox/scale_boxes and
non_max_suppression, MediaPipe's SsdAnchorsCalculator and TensorsToDetectionsCalculator, the
TFLite_Detection_PostProcess op's outputs, MoveNet's model card), one loop per candidate, never
the vectorised code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.decode import anchors, pose, segment, ssd_postprocess, yolo
from edge.decode.geometry import fit_frame_to_input
from edge.decode.nms import nms


def naive_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_nms(boxes, scores, classes, iou, limit):
    """Greedy NMS per class, one candidate at a time (torchvision's documented semantics)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if len(keep) == limit:
            break
        if all(classes[i] != classes[k] or naive_iou(boxes[i], boxes[k]) <= iou for k in keep):
            keep.append(i)
    return keep


def random_boxes(rng, n, span=100.0):
    xy = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(1, span / 3, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 80), iou=st.floats(0.05, 0.95),
       classes=st.integers(1, 4), limit=st.integers(1, 100))
def test_nms_equals_the_naive_greedy_one(seed, n, iou, classes, limit):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n)
    scores = rng.permutation(n).astype(np.float32) / max(n, 1)  # distinct scores
    labels = rng.integers(0, classes, n)
    kept = nms(boxes, scores, labels, iou_threshold=iou, max_detections=limit)
    assert kept.tolist() == naive_nms(boxes.tolist(), scores.tolist(), labels.tolist(), iou, limit)


def test_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, np.array([0, 0, 1]), iou_threshold=0.5).tolist() == [0, 2]
    assert nms(boxes, scores, None, iou_threshold=0.5).tolist() == [0]


def ultralytics_letterbox(shape_hw, new_hw):
    """Ultralytics' LetterBox (auto=False, center=True) and scale_boxes, as documented."""
    r = min(new_hw[0] / shape_hw[0], new_hw[1] / shape_hw[1])
    unpad_w, unpad_h = round(shape_hw[1] * r), round(shape_hw[0] * r)
    dw, dh = (new_hw[1] - unpad_w) / 2, (new_hw[0] - unpad_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    return r, left, top, unpad_w, unpad_h


@pytest.mark.parametrize(("frame", "model"), [((512, 600), (640, 640)), ((1920, 1080), (640, 640)),
                                              ((100, 37), (320, 256)), ((640, 640), (640, 640)),
                                              ((3, 1000), (224, 224))])
def test_letterbox_is_ultralytics_and_maps_back(frame, model):
    fit = fit_frame_to_input(frame, model, "letterbox")
    r, left, top, w, h = ultralytics_letterbox(frame[::-1], model[::-1])
    assert fit.content == (left, top, w, h)
    assert fit.scale_x == fit.scale_y == pytest.approx(r)
    # scale_boxes: (box - pad) / gain, clipped to the frame
    box = np.array([[left + 3.0, top + 5.0, left + w - 1.0, top + h]], np.float32)
    expected = [3 / r, 5 / r, (w - 1) / r, h / r]
    expected = [min(max(v, 0), frame[i % 2]) for i, v in enumerate(expected)]
    assert fit.boxes_to_frame(box)[0].tolist() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("mode", ["squash", "crop", "letterbox"])
def test_points_map_back_to_where_they_were(mode):
    frame, model = (800, 450), (300, 300)
    fit = fit_frame_to_input(frame, model, mode)
    points = np.array([[400.0, 225.0], [410.0, 200.0]], np.float32)  # inside any crop
    in_input = np.stack([points[:, 0] * fit.scale_x + fit.pad_x,
                         points[:, 1] * fit.scale_y + fit.pad_y], axis=1)
    assert fit.points_to_frame(in_input) == pytest.approx(points, abs=1e-3)
    if mode == "crop":  # the crop keeps the centre square of the frame
        assert fit.pad_x == pytest.approx(-(800 - 450) / 2 * 300 / 450)


def v8_head(objects, classes=3, n=200, rng=None):
    """A float [1, 4+C, N] head with ``objects`` = [(cx, cy, w, h, class, score)] normalised,
    the rest low noise."""
    rng = rng or np.random.default_rng(0)
    head = np.zeros((4 + classes, n), np.float32)
    head[:4] = rng.uniform(0.1, 0.9, (4, n))
    head[4:] = rng.uniform(0, 0.05, (classes, n))
    for j, (cx, cy, w, h, c, s) in enumerate(objects):
        column = 7 * j + 3
        head[:4, column] = (cx, cy, w, h)
        head[4 + c, column] = s
        head[:4, column + 1] = (cx + 0.003, cy, w, h)  # a near-duplicate NMS must drop
        head[4 + c, column + 1] = s - 0.01
    return head[None]


def test_yolo_v8_float_finds_the_objects_in_input_pixels():
    head = v8_head([(0.5, 0.5, 0.2, 0.4, 1, 0.9), (0.2, 0.3, 0.1, 0.1, 2, 0.6)])
    spec = yolo.yolo_spec(head.shape)
    assert spec == yolo.YoloSpec("v8", 3)
    found = yolo.decode_yolo(head, spec, (640, 480), threshold=0.25, iou_threshold=0.45)
    assert found.classes.tolist() == [1, 2]
    assert found.scores.tolist() == pytest.approx([0.9, 0.6])
    assert found.boxes[0].tolist() == pytest.approx([256, 144, 384, 336], abs=1e-3)


def test_yolo_v8_int8_thresholds_in_the_quantized_domain_like_the_float_decode():
    rng = np.random.default_rng(3)
    head = v8_head([(0.4, 0.6, 0.3, 0.2, 0, 0.8), (0.7, 0.2, 0.2, 0.2, 2, 0.3)], rng=rng)
    scale, zero = 1 / 255, -128
    quantized = np.clip(np.round(head / scale + zero), -128, 127).astype(np.int8)
    spec = yolo.YoloSpec("v8", 3, scale, zero)
    found = yolo.decode_yolo(quantized, spec, (320, 320), threshold=0.25)
    reference = yolo.decode_yolo((quantized.astype(np.float32) - zero) * scale,
                                 yolo.YoloSpec("v8", 3), (320, 320), threshold=0.25)
    assert found.classes.tolist() == reference.classes.tolist() == [0, 2]
    assert found.boxes == pytest.approx(reference.boxes, abs=1e-4)


def test_yolo_v5_multiplies_objectness_and_reads_pixels():
    n, classes = 300, 4
    rows = np.zeros((n, 5 + classes), np.float32)
    rows[:, :4] = [50, 50, 10, 10]
    rows[10] = [100, 120, 40, 60, 0.9, 0.1, 0.1, 0.8, 0.1]  # class 2, score 0.72
    rows[11] = [300, 200, 20, 20, 0.3, 0.9, 0, 0, 0]  # 0.27: above 0.25
    rows[12] = [300, 50, 20, 20, 0.9, 0.2, 0, 0, 0]  # 0.18: below
    spec = yolo.yolo_spec((1, n, 5 + classes))
    assert spec == yolo.YoloSpec("v5", classes)
    found = yolo.decode_yolo(rows[None], spec, (416, 416), threshold=0.25)
    assert found.classes.tolist() == [2, 0]
    assert found.scores.tolist() == pytest.approx([0.72, 0.27])
    assert found.boxes[0].tolist() == pytest.approx([80, 90, 120, 150])  # pixels kept


def test_a_transposed_v8_head_is_told_from_v5_by_the_labels_count():
    assert yolo.yolo_spec((1, 8400, 84)).version == "v5"
    assert yolo.yolo_spec((1, 8400, 84), classes_hint=80) == yolo.YoloSpec("v8-transposed", 80)
    head = v8_head([(0.5, 0.5, 0.2, 0.2, 1, 0.9)])
    transposed = np.ascontiguousarray(head.transpose(0, 2, 1))
    spec = yolo.yolo_spec(transposed.shape, classes_hint=3)
    a = yolo.decode_yolo(transposed, spec, (100, 100))
    b = yolo.decode_yolo(head, yolo.yolo_spec(head.shape), (100, 100))
    assert a.boxes == pytest.approx(b.boxes) and a.classes.tolist() == b.classes.tolist()


def mediapipe_anchors(size=128, strides=(8, 16, 16, 16)):
    """SsdAnchorsCalculator with fixed_anchor_size, aspect ratio 1 and the interpolated scale,
    written as its loops are: layers of one stride share a grid."""
    out = []
    layer = 0
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2
            last += 1
        cells = int(np.ceil(size / strides[layer]))
        for y in range(cells):
            for x in range(cells):
                for _ in range(per_cell):
                    out.append(((x + 0.5) / cells, (y + 0.5) / cells))
        layer = last
    return np.array(out, np.float32)


def test_blazeface_anchors_are_mediapipes():
    centres = anchors.anchor_centres((128, 128))
    assert centres.shape == (896, 2)
    assert centres == pytest.approx(mediapipe_anchors())
    assert anchors.anchor_spec((1, 896, 16), (1, 896, 1), (128, 128)).keypoints == 6
    assert anchors.anchor_spec((1, 895, 16), (1, 895, 1), (128, 128)) is None


def test_anchor_decode_is_the_documented_formula():
    spec = anchors.anchor_spec((1, 896, 16), (1, 896, 1), (128, 128))
    raw = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    i = 600  # an 8x8-grid anchor
    raw[0, i, :4] = [6.0, -4.0, 32.0, 48.0]
    raw[0, i, 4:6] = [2.0, 3.0]
    logits[0, i, 0] = 2.0
    found = anchors.decode_anchors(raw, logits, spec, threshold=0.5)
    ax, ay = mediapipe_anchors()[i]
    cx, cy = 6 / 128 + ax, -4 / 128 + ay
    expected = [(cx - 16 / 128) * 128, (cy - 24 / 128) * 128, (cx + 16 / 128) * 128,
                (cy + 24 / 128) * 128]
    assert len(found) == 1
    assert found.boxes[0].tolist() == pytest.approx(expected, abs=1e-4)
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert found.keypoints[0, 0].tolist() == pytest.approx([(2 / 128 + ax) * 128,
                                                            (3 / 128 + ay) * 128], abs=1e-4)


def test_postprocess_outputs_by_role():
    outputs = {
        "boxes": np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0]]],
                          np.float32),
        "classes": np.array([[3.0, 0.0, 7.0]], np.float32),
        "scores": np.array([[0.45, 0.9, 0.99]], np.float32),
        "count": np.array([2.0], np.float32),
    }
    found = ssd_postprocess.decode_postprocess(outputs, (200, 100), threshold=0.4)
    assert found.classes.tolist() == [0, 3]  # best first; the third is past the count
    assert found.boxes.ravel().tolist() == pytest.approx([0, 0, 200, 100, 40, 10, 120, 50])
    assert len(ssd_postprocess.decode_postprocess(outputs, (200, 100), threshold=0.5)) == 1


def test_segment_shares_and_mask_back_to_the_frame():
    grid = np.zeros((1, 4, 4), np.int64)
    grid[0, :2, :] = 15
    assert segment.segment_layout(grid.shape, "int64") == "index"
    assert segment.segment_layout((1, 4, 4, 21), "float32") == "scores"
    mask = segment.class_map(grid, "index")
    assert mask.dtype == np.uint8
    assert segment.class_shares(mask, 21)[[0, 15]].tolist() == [0.5, 0.5]
    scores = np.zeros((1, 4, 4, 3), np.float32)
    scores[0, :, :1, 2] = 1.0
    assert segment.class_map(scores, "scores")[:, 0].tolist() == [2, 2, 2, 2]
    # squash: the whole grid is the frame
    fit = fit_frame_to_input((8, 6), (4, 4), "squash")
    full = segment.mask_to_frame(mask, fit)
    assert full.shape == (6, 8) and full[:3].tolist() == [[15] * 8] * 3 and full[3:].max() == 0
    # crop: the cut-off sides were not seen
    fit = fit_frame_to_input((8, 4), (4, 4), "crop")
    full = segment.mask_to_frame(mask, fit)
    assert full[:, :2].tolist() == [[255, 255]] * 4 and full[:2, 2:6].tolist() == [[15] * 4] * 2
    # letterbox: the borders are cut before counting
    fit = fit_frame_to_input((8, 4), (8, 8), "letterbox")
    cut = segment.mask_region(np.ones((8, 8), np.uint8), fit.content, (8, 8))
    assert cut.shape == (4, 8)


def test_movenet_points_are_y_x_score():
    raw = np.zeros((1, 1, 17, 3), np.float32)
    raw[0, 0, 1] = [0.25, 0.75, 0.6]  # left eye: y, x, score
    points, scores = pose.decode_single_pose(raw, (192, 192))
    assert points[1].tolist() == [144.0, 48.0] and scores[1] == pytest.approx(0.6)
    assert pose.is_single_pose((1, 1, 17, 3)) and not pose.is_single_pose((1, 6, 56))
