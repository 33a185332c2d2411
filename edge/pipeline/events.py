"""What flows out of the classifier: predictions and the label events the sinks receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


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


@dataclass(frozen=True)
class LabelEvent:
    """The result for one frame, as every sink receives it.

    Attributes:
        seq: position of the event in this run, from 0.
        frame_index: the frame's index in its source.
        capture_ns: ``time.monotonic_ns()`` at capture.
        latency_ms: capture-to-label latency.
        wall_time: ``time.time()`` when the label was ready.
        predictions: best first; empty when nothing reached the threshold.
        truth: ground-truth class when the source knows it (the demo scene).
        source: the frame's source as the user named it (camera, URL, video file, folder).
        file: the image file, for frames of a folder; None otherwise.
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

    @property
    def top(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-lines form: the input (``source``, ``frame``, ``file`` for a folder's
        images), flat top-1 fields, the full top-k, and the truth when known."""
        top = self.top
        data: dict[str, Any] = {
            "seq": self.seq,
            "source": self.source,
            "frame": self.frame_index,
            "time": round(self.wall_time, 3),
            "index": top.index if top else None,
            "label": top.label if top else None,
            "score": round(top.score, 5) if top else None,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.file is not None:
            data["file"] = self.file
        if len(self.predictions) > 1:
            data["top_k"] = [{"index": p.index, "label": p.label, "score": round(p.score, 5)}
                             for p in self.predictions]
        if self.truth is not None:
            data["truth"] = self.truth
        return data
