"""What a model's result is, for every kind, and the label events every sink receives.

This module sits below the pipeline, the sinks, the preview and the serial gateway, which all
read it; it imports nothing of edge. The shapes are the one result shape of every command:

* ``classify``: :class:`Prediction` rows, best first.
* ``detect``: :class:`Detection` boxes in the original frame's pixels.
* ``pose``: :class:`Keypoint` points in the original frame's pixels.
* ``segment``: :class:`ClassShare` per class present (share of the frame's pixels), and the
  class-index mask itself for sinks that draw it (never in the JSON form).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

CLASSIFY = "classify"
DETECT = "detect"
SEGMENT = "segment"
POSE = "pose"
KINDS = (CLASSIFY, DETECT, SEGMENT, POSE)


def new_run_id() -> str:
    """A short id for one run: the start time in seconds (hex) and 16 random bits, e.g.
    ``"6932f1c4-9a1e"``; sorts by start time, unique enough among one device's runs."""
    return f"{int(time.time()):x}-{secrets.token_hex(2)}"


class Scored(Protocol):
    """Anything with a class index, its label text and a score (e.g. a runtime Classification)."""

    @property
    def index(self) -> int: ...

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class Prediction:
    """One class of a label event, after smoothing, top-k and threshold."""

    index: int
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": round(self.score, 5)}


@dataclass(frozen=True)
class Detection:
    """One object found in a frame.

    Attributes:
        index: class index in the model's labels.
        label: its label text ("" when the model has no label for it).
        score: confidence in [0, 1].
        box: ``(xmin, ymin, xmax, ymax)`` in the original frame's pixels.
    """

    index: int
    label: str
    score: float
    box: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "score": round(self.score, 5),
                "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class Keypoint:
    """One named point of a pose, in the original frame's pixels."""

    name: str
    x: float
    y: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "x": round(self.x, 1), "y": round(self.y, 1),
                "score": round(self.score, 5)}


@dataclass(frozen=True)
class ClassShare:
    """The share of a frame's pixels that a segmentation model gave one class."""

    index: int
    label: str
    share: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "share": round(self.share, 5)}


@dataclass(frozen=True)
class LabelEvent:
    """The result for one frame, as every sink receives it.

    Attributes:
        seq: position of the event in this run, from 0.
        frame_index: the frame's index in its source.
        capture_ns: ``time.monotonic_ns()`` at capture.
        latency_ms: capture-to-label latency.
        wall_time: ``time.time()`` when the label was ready.
        predictions: best first; empty when nothing reached the threshold. For the other kinds,
            the event's headline classes (e.g. each detected label once, best score first), so
            sinks that show "the label" have one.
        truth: ground-truth class when the source knows it (the demo scene).
        source: the frame's source as the user named it (camera, URL, video file, folder).
        file: the image file, for frames of a folder; None otherwise.
        kind: one of :data:`KINDS`.
        detections: objects found (``detect``), best first.
        keypoints: pose points (``pose``).
        segments: classes present and their pixel shares (``segment``), largest first.
        frame_size: ``(width, height)`` of the original frame, the space of boxes and points.
        mask: class index per pixel (``segment``, uint8 or wider, the model's output grid);
            for drawing, never serialised.
        run: id of the run (:func:`new_run_id`), so consumers can de-duplicate by
            ``(run, seq)`` across restarts; "" when not set (then not serialised).
    """

    seq: int
    frame_index: int
    capture_ns: int
    latency_ms: float
    wall_time: float
    predictions: tuple[Prediction, ...]
    truth: int | None = None
    source: str = ""
    file: str | None = None
    kind: str = CLASSIFY
    detections: tuple[Detection, ...] = ()
    keypoints: tuple[Keypoint, ...] = ()
    segments: tuple[ClassShare, ...] = ()
    frame_size: tuple[int, int] | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    run: str = ""

    @property
    def top(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None

    def counts(self) -> dict[str, int]:
        """Objects per label (``detect``); empty for the other kinds."""
        return dict(Counter(d.label or str(d.index) for d in self.detections))

    def change_key(self) -> tuple[Any, ...]:
        """What ``--on-change`` compares: the top label for a classifier, the set of labels
        and their counts for a detector, the set of classes present for a segmenter, and the
        names of the keypoints seen for a pose model."""
        if self.kind == DETECT:
            return tuple(sorted(self.counts().items()))
        if self.kind == SEGMENT:
            return tuple(sorted(s.index for s in self.segments))
        if self.kind == POSE:
            return tuple(k.name for k in self.keypoints)
        top = self.top
        return (top.index if top else None,)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-lines form: the input (``source``, ``frame``, ``file`` for a folder's
        images), the kind, flat top-1 fields, the full top-k, the kind's own fields and the
        truth when known."""
        top = self.top
        data: dict[str, Any] = {"run": self.run} if self.run else {}
        data |= {
            "seq": self.seq,
            "source": self.source,
            "frame": self.frame_index,
            "time": round(self.wall_time, 3),
            "kind": self.kind,
            "index": top.index if top else None,
            "label": top.label if top else None,
            "score": round(top.score, 5) if top else None,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.file is not None:
            data["file"] = self.file
        if len(self.predictions) > 1:
            data["top_k"] = [p.as_dict() for p in self.predictions]
        if self.kind == DETECT:
            data["detections"] = [d.as_dict() for d in self.detections]
            data["counts"] = self.counts()
        elif self.kind == POSE:
            data["keypoints"] = [k.as_dict() for k in self.keypoints]
        elif self.kind == SEGMENT:
            data["segments"] = [s.as_dict() for s in self.segments]
        if self.frame_size is not None and self.kind != CLASSIFY:
            data["width"], data["height"] = self.frame_size
        if self.truth is not None:
            data["truth"] = self.truth
        return data
