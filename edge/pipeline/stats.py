"""Run statistics: throughput, capture-to-label latency percentiles, drops, reconnects, accuracy."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.events import LabelEvent
from edge.pipeline.capture import CaptureCounters

LATENCY_WINDOW = 10_000  # latencies kept for the percentiles (the most recent ones)


@dataclass(frozen=True)
class RunSummary:
    """A snapshot of a run, for status lines and the final summary.

    Attributes:
        frames: frames classified.
        seconds: since the run started.
        fps: frames classified per second, from the first label on (the interpreter's
            first-invoke warm-up, e.g. XNNPACK packing weights, is not throughput).
        recent_fps: over the last status interval.
        latency_p50_ms: median capture-to-label latency.
        latency_p95_ms: 95th percentile.
        dropped: stale frames replaced before inference took them.
        reconnects: camera reopens that worked.
        camera_errors: failed reads and reopen attempts.
        stalls: reads the watchdog found hanging.
        accuracy: top-1 agreement with the source's ground truth, when it has one.
        sinks: each sink's delivery numbers by sink name (e.g. ``mqtt``: queued, delivered,
            dropped), for the sinks that count any.
    """

    frames: int
    seconds: float
    fps: float
    recent_fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    dropped: int
    reconnects: int
    camera_errors: int
    stalls: int
    accuracy: float | None
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def status_line(self) -> str:
        """One line for stderr."""
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        line = (f"{self.frames} frames  {self.recent_fps:.1f} fps  latency p50 "
                f"{ms(self.latency_p50_ms)} ms p95 {ms(self.latency_p95_ms)} ms  "
                f"dropped {self.dropped}  reconnects {self.reconnects}")
        if self.accuracy is not None:
            line += f"  accuracy {self.accuracy:.1%}"
        for name, counts in self.sinks.items():
            line += f"  {name} " + " ".join(f"{key} {value}" for key, value in counts.items())
        return line


class RunStats:
    """Accumulates label events; :meth:`summary` turns them into a :class:`RunSummary`."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.correct = 0
        self.with_truth = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._mark = (self.started, 0)
        self.first_label: float | None = None

    def record(self, event: LabelEvent) -> None:
        if self.first_label is None:
            self.first_label = time.monotonic()
        self.frames += 1
        self.latencies.append(event.latency_ms)
        if event.truth is not None:
            self.with_truth += 1
            top = event.top
            self.correct += top is not None and top.index == event.truth

    def _steady_fps(self, now: float) -> float:
        if self.first_label is None or self.frames < 2:
            return self.frames / max(now - self.started, 1e-9)
        return (self.frames - 1) / max(now - self.first_label, 1e-9)

    def summary(self, capture: CaptureCounters, *, advance: bool = False) -> RunSummary:
        """Snapshot; ``advance`` starts a new interval for :attr:`RunSummary.recent_fps`."""
        now = time.monotonic()
        seconds = now - self.started
        mark_time, mark_frames = self._mark
        recent = (self.frames - mark_frames) / max(now - mark_time, 1e-9)
        if advance:
            self._mark = (now, self.frames)
        p50, p95 = percentiles(self.latencies, (50, 95))
        return RunSummary(
            frames=self.frames,
            seconds=seconds,
            fps=self._steady_fps(now),
            recent_fps=recent,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            dropped=capture.dropped,
            reconnects=capture.reconnects,
            camera_errors=capture.camera_errors,
            stalls=capture.stalls,
            accuracy=self.correct / self.with_truth if self.with_truth else None,
        )


def percentiles(values: deque[float] | list[float], qs: tuple[float, ...]
                ) -> tuple[float | None, ...]:
    """The ``qs`` percentiles of ``values`` (None each when empty)."""
    if not values:
        return tuple(None for _ in qs)
    result = np.percentile(np.fromiter(values, float), qs)
    return tuple(float(v) for v in result)
