"""Output tensors to results of every kind: classes, boxes, points, masks, with labels.

The pure decoders of :mod:`edge.decode` turn arrays into boxes, points and class maps in the
model input's pixels; this module applies the user's options (threshold, IoU, how many, which
labels), maps everything back to the original frame (:class:`edge.decode.geometry.Fit`) and
names it with the model's labels, giving one :class:`FrameResult` per frame, whatever the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.decode import anchors, pose, segment, ssd_postprocess, yolo
from edge.decode.boxes import BoxSet
from edge.decode.centroids import CentroidSpec, decode_regions, score_of
from edge.decode.classes import dequantize_flat, top_k
from edge.decode.geometry import Fit
from edge.events import CLASSIFY, DETECT, POSE, SEGMENT, ClassShare, Detection, Keypoint

__all__ = ["Classification", "DecodeOptions", "FrameResult", "classify_scores", "decode_outputs",
           "dequantize", "top_k"]

dequantize = dequantize_flat  # the name callers know

# Least score kept when the user gives none: Ultralytics' predict default for YOLO, MediaPipe's
# min_score_thresh for BlazeFace, and what Coral's detection example uses for SSDs.
DEFAULT_THRESHOLDS = {"yolo": 0.25, "anchors": 0.5, "ssd_postprocess": 0.4, "centroids": 0.5}
DEFAULT_IOU = {"yolo": 0.45, "anchors": 0.3}
BACKGROUND_NAMES = frozenset({"background", "???", "__background__"})
FACE = "face"
PERSON = "person"


@dataclass(frozen=True)
class Classification:
    """One class of a result: its index in the model's output, its label and its score."""

    index: int
    label: str
    score: float


@dataclass(frozen=True)
class DecodeOptions:
    """What the user asked of a frame's result.

    Attributes:
        top_k: classes per result (classifiers), headline labels (other kinds).
        threshold: least score kept; None takes the layout's default
            (:data:`DEFAULT_THRESHOLDS`, 0 for classes and keypoints).
        iou: NMS overlap limit (YOLO, anchors); None takes the layout's default.
        max_detections: most boxes per frame.
        classes: keep only detections and classes with these labels (or indices); None keeps
            all.
    """

    top_k: int = 5
    threshold: float | None = None
    iou: float | None = None
    max_detections: int = 100
    classes: frozenset[str] | None = None


@dataclass(frozen=True)
class FrameResult:
    """One frame's result, of any kind, in the original frame's pixels.

    Attributes:
        kind: one of :data:`edge.events.KINDS`.
        frame_size: ``(width, height)`` of the original frame.
        predictions: classes best first (classifiers), or the headline classes of the other
            kinds (each detected label once, classes by pixel share, the pose's mean score).
        detections: boxes, best first (``detect``).
        keypoints: points (``pose``).
        segments: classes present and their share of the frame, largest first (``segment``).
        mask: class index per pixel on the model's grid, cut to the part showing the frame
            (``segment``); :func:`edge.decode.segment.mask_region`.
    """

    kind: str
    frame_size: tuple[int, int]
    predictions: tuple[Classification, ...] = ()
    detections: tuple[Detection, ...] = ()
    keypoints: tuple[Keypoint, ...] = ()
    segments: tuple[ClassShare, ...] = ()
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class OutputSpec:
    """One output a decoder reads: its shape and quantization, as the interpreter reports."""

    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0


def classify_scores(scores: np.ndarray, labels: Sequence[str], k: int,
                    threshold: float = 0.0) -> list[Classification]:
    """:func:`top_k` with labels; an index without a label gets ``""``."""
    return [Classification(i, labels[i] if i < len(labels) else "", s)
            for i, s in top_k(scores, k, threshold)]


Decoder = Callable[[list[np.ndarray], Fit, Sequence[str], DecodeOptions], FrameResult]


def make_decoder(layout: str, outputs: Sequence[OutputSpec], input_size: tuple[int, int],
                 classes_hint: int | None = None, threshold: float | None = None) -> Decoder:
    """The decoder of ``layout`` for outputs of these shapes (checked once, at open).

    ``threshold`` replaces the layout's default threshold (a centroid model's record carries
    the one chosen on its validation split).

    Raises:
        ValueError: the outputs do not fit the layout (the kind check should have said so).
    """
    builders: dict[str, Callable[..., Decoder]] = {
        "classes": _classes_decoder, "yolo": _yolo_decoder, "anchors": _anchors_decoder,
        "ssd_postprocess": _ssd_decoder, "segment": _segment_decoder, "pose": _pose_decoder}
    if layout == "centroids":
        return _centroids_decoder(list(outputs), input_size, threshold)
    if layout not in builders:
        raise ValueError(f"no decoder for layout {layout!r}")
    return builders[layout](list(outputs), input_size, classes_hint)


def decode_outputs(layout: str, raw: list[np.ndarray], outputs: Sequence[OutputSpec],
                   fit: Fit, labels: Sequence[str], options: DecodeOptions) -> FrameResult:
    """One-shot :func:`make_decoder` and decode (for tests and scripts)."""
    return make_decoder(layout, outputs, fit.input_size)(raw, fit, labels, options)


def _classes_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                     classes_hint: int | None) -> Decoder:
    spec = outputs[0]

    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        scores = dequantize_flat(raw[0], spec.scale, spec.zero_point)
        results = classify_scores(scores, labels, options.top_k, options.threshold or 0.0)
        return FrameResult(CLASSIFY, fit.frame_size, tuple(_allowed(results, options)))
    return decode


def _yolo_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                  classes_hint: int | None) -> Decoder:
    out = outputs[0]
    found = yolo.yolo_spec(out.shape, classes_hint)
    if found is None:
        raise ValueError(f"output {list(out.shape)} is not a YOLO head")
    spec = yolo.YoloSpec(found.version, found.classes, out.scale, out.zero_point)

    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        boxes = yolo.decode_yolo(raw[0], spec, input_size,
                                 threshold=_threshold(options, "yolo"),
                                 iou_threshold=_iou(options, "yolo"),
                                 max_detections=_wide_limit(options))
        return _detections(boxes, fit, labels, options)
    return decode


def _anchors_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                     classes_hint: int | None) -> Decoder:
    spec = anchors.anchor_spec(outputs[0].shape, outputs[1].shape, input_size)
    if spec is None:
        raise ValueError(f"outputs {[list(o.shape) for o in outputs]} are not an anchor head")

    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        boxes = anchors.decode_anchors(raw[0], raw[1], spec,
                                       threshold=_threshold(options, "anchors"),
                                       iou_threshold=_iou(options, "anchors"),
                                       max_detections=_wide_limit(options))
        return _detections(boxes, fit, labels or (FACE,), options)
    return decode


def _ssd_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                 classes_hint: int | None) -> Decoder:
    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        by_role = dict(zip(ssd_postprocess.ROLES, raw, strict=True))
        boxes = ssd_postprocess.decode_postprocess(
            by_role, input_size, threshold=_threshold(options, "ssd_postprocess"),
            max_detections=_wide_limit(options))
        names = labels[1:] if labels and labels[0].strip().lower() in BACKGROUND_NAMES else labels
        return _detections(boxes, fit, names, options)
    return decode


def _centroids_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                       threshold: float | None) -> Decoder:
    """Per-cell class grids ``[1, H, W, 1 + C]`` (edge-model's centroid detectors): regions
    of :mod:`edge.decode.centroids`, their cell boxes scaled to the input, then the frame."""
    out = outputs[0]
    if len(out.shape) != 4 or out.shape[3] < 2:
        raise ValueError(f"output {list(out.shape)} is not a centroid grid [1, H, W, 1+C]")
    sx, sy = input_size[0] / out.shape[2], input_size[1] / out.shape[1]
    default = DEFAULT_THRESHOLDS["centroids"] if threshold is None else threshold

    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        cut = default if options.threshold is None else options.threshold
        spec = CentroidSpec(out.scale, out.zero_point, cut, _wide_limit(options))
        regions = decode_regions(raw[0], spec)
        boxes = np.array([(r.x0 * sx, r.y0 * sy, r.x1 * sx, r.y1 * sy) for r in regions],
                         np.float32).reshape(-1, 4)
        found = BoxSet(boxes, np.array([score_of(r, spec) for r in regions], np.float32),
                       np.array([r.channel for r in regions], np.int64))
        return _detections(found, fit, labels, options)
    return decode


def _segment_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                     classes_hint: int | None) -> Decoder:
    shape = outputs[0].shape
    layout = segment.SCORES if len(shape) == 4 and shape[3] >= 2 else segment.INDEX

    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        grid = segment.mask_region(segment.class_map(raw[0], layout), fit.content, input_size)
        shares = segment.class_shares(grid, len(labels))
        present = [int(i) for i in np.argsort(-shares, kind="stable") if shares[i] > 0]
        rows = [ClassShare(i, _label(labels, i), float(shares[i])) for i in present]
        rows = [r for r in rows if _wanted(r.label, r.index, options)]
        heads = tuple(Classification(r.index, r.label, r.share) for r in rows[:options.top_k])
        return FrameResult(SEGMENT, fit.frame_size, heads, segments=tuple(rows), mask=grid)
    return decode


def _pose_decoder(outputs: list[OutputSpec], input_size: tuple[int, int],
                  classes_hint: int | None) -> Decoder:
    def decode(raw: list[np.ndarray], fit: Fit, labels: Sequence[str],
               options: DecodeOptions) -> FrameResult:
        points, scores = pose.decode_single_pose(raw[0], input_size)
        frame_points = fit.points_to_frame(points)
        floor = options.threshold or 0.0
        keypoints = tuple(Keypoint(name, float(x), float(y), float(s))
                          for name, (x, y), s in zip(pose.COCO_KEYPOINTS, frame_points, scores,
                                                     strict=True) if s >= floor)
        mean = float(scores.mean()) if len(scores) else 0.0
        heads = (Classification(0, PERSON, mean),) if keypoints else ()
        return FrameResult(POSE, fit.frame_size, heads, keypoints=keypoints)
    return decode


def _detections(found: BoxSet, fit: Fit, labels: Sequence[str], options: DecodeOptions
                ) -> FrameResult:
    boxes = fit.boxes_to_frame(found.boxes)
    rows = []
    for box, score, index in zip(boxes.tolist(), found.scores.tolist(), found.classes.tolist(),
                                 strict=True):
        label = _label(labels, index)
        if _wanted(label, index, options):
            rows.append(Detection(index, label, score, (box[0], box[1], box[2], box[3])))
        if len(rows) == options.max_detections:
            break
    heads: dict[int, Classification] = {}
    for d in rows:
        heads.setdefault(d.index, Classification(d.index, d.label, d.score))
    return FrameResult(DETECT, fit.frame_size, tuple(list(heads.values())[:options.top_k]),
                       tuple(rows))


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else ""


def _wanted(label: str, index: int, options: DecodeOptions) -> bool:
    return options.classes is None or label in options.classes or str(index) in options.classes


def _allowed(results: list[Classification], options: DecodeOptions) -> list[Classification]:
    return [r for r in results if _wanted(r.label, r.index, options)]


def _threshold(options: DecodeOptions, layout: str) -> float:
    return DEFAULT_THRESHOLDS[layout] if options.threshold is None else options.threshold


def _iou(options: DecodeOptions, layout: str) -> float:
    return DEFAULT_IOU[layout] if options.iou is None else options.iou


def _wide_limit(options: DecodeOptions) -> int:
    """Boxes to keep from NMS: more than asked when a label filter will drop some."""
    return options.max_detections if options.classes is None else 10 * options.max_detections


def parse_classes(text: str | Collection[str] | None) -> frozenset[str] | None:
    """``--classes person,car`` as a set of labels (or indices); None for none."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = frozenset(p.strip() for p in parts if p.strip())
    return names or None


def result_dict(result: FrameResult) -> dict[str, Any]:
    """The kind's own JSON fields of a result (the edge-classify and event forms agree)."""
    data: dict[str, Any] = {"kind": result.kind}
    if result.kind == DETECT:
        data["detections"] = [d.as_dict() for d in result.detections]
    elif result.kind == POSE:
        data["keypoints"] = [k.as_dict() for k in result.keypoints]
    elif result.kind == SEGMENT:
        data["segments"] = [s.as_dict() for s in result.segments]
    return data
