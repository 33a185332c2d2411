"""What the preview shows, kept off the inference thread.

:meth:`PreviewHub.observe` is called by the inference loop for every labelled frame: it stores
one reference and appends two numbers, takes no lock, makes no system call and does not depend
on how many clients there are. Everything else happens in other threads:

* the encoder thread (here) turns the newest frame into one annotated JPEG when the server's
  tick asks for one (only while at least one client watches the stream), at most once per
  frame and ``max_fps`` times a second, however many viewers there are; the server sends the
  same bytes to every viewer. Without viewers it sleeps and never wakes;
* the server thread reads the newest event at its own capped rate (see
  :mod:`edge.preview.server`) and the live numbers for ``/status`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from edge.events import LabelEvent
from edge.preview import PreviewOptions
from edge.preview.overlay import annotate, fit_width

log = logging.getLogger(__name__)

FPS_WINDOW_S = 2.0
LATENCY_WINDOW = 1024


@dataclass
class ServerCounters:
    """What the server went through (written by the server thread only).

    Attributes:
        connections: open connections now.
        viewers: clients of the MJPEG stream now.
        listeners: clients of the event stream now.
        refused: connections closed at once because the limit was reached by busy ones.
        evicted: idle connections (no request yet, or between requests) closed to make room.
        timed_out: connections closed because a request did not arrive in time.
        accept_errors: accepts that failed (e.g. no descriptor left); accepting pauses 1 s.
        bad_requests: malformed, too large or refused (Host, token, method) requests.
        slow_dropped: stream clients dropped because they did not keep up.
        frames_skipped: JPEG frames not sent to a viewer whose connection was still busy.
        events_sent: event messages written (one per client and event).
        events_coalesced: label events never sent because a newer one came within the rate cap.
        cpu_s: CPU seconds the server thread has used.
    """

    connections: int = 0
    viewers: int = 0
    listeners: int = 0
    refused: int = 0
    evicted: int = 0
    timed_out: int = 0
    accept_errors: int = 0
    bad_requests: int = 0
    slow_dropped: int = 0
    frames_skipped: int = 0
    events_sent: int = 0
    events_coalesced: int = 0
    cpu_s: float = 0.0


class PreviewHub:
    """The newest frame and event, the live numbers, and the JPEG encoder thread.

    Attributes:
        counters: the server's numbers, shown in ``/status`` and ``/metrics``.
    """

    def __init__(self, options: PreviewOptions) -> None:
        self.options = options
        self.encoded = 0
        self.encode_errors = 0
        self.encode_cpu_s = 0.0
        self.counters = ServerCounters()
        self._latest: tuple[int, np.ndarray, LabelEvent] | None = None
        self._observed = 0
        self._first: float | None = None
        self._times: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._summary: dict[str, Any] = {}
        self._jpeg: bytes | None = None
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="edge-preview-jpeg",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # --- fed by the pipeline (inference thread) ---------------------------------------------

    def observe(self, rgb: np.ndarray, event: LabelEvent) -> None:
        """One labelled frame: keep a reference to it, never wait, never fan out."""
        now = time.monotonic()
        self._observed += 1
        self._latest = (self._observed, rgb, event)
        self._times.append(now)
        self._latencies.append(event.latency_ms)
        if self._first is None:
            self._first = now

    def status(self, summary: Mapping[str, Any]) -> None:
        """The run's latest status numbers (every status interval)."""
        self._summary = dict(summary)

    # --- read by the server -----------------------------------------------------------------

    def latest_event(self) -> tuple[int, LabelEvent | None]:
        """(number of frames observed so far, the newest event)."""
        latest = self._latest
        return (latest[0], latest[2]) if latest is not None else (0, None)

    @property
    def jpeg(self) -> bytes | None:
        """The newest JPEG, if any was encoded."""
        return self._jpeg

    def live_summary(self) -> dict[str, Any]:
        """The run summary with frames, fps and latency as of now, from the first frame on
        (the rest, e.g. drops and sink counters, as of the last status interval)."""
        summary = dict(self._summary)
        now = time.monotonic()
        times = list(self._times)
        latencies = np.asarray(list(self._latencies), float)  # list(): one step under the GIL
        frames = self._observed
        first = self._first
        steady = (frames - 1) / (times[-1] - first) if first is not None and frames > 1 and \
            times[-1] > first else 0.0
        p50, p95 = (float(v) for v in np.percentile(latencies, (50, 95))) if latencies.size \
            else (None, None)
        summary.update(frames=frames, fps=round(steady, 4), recent_fps=self._fps(now, times),
                       latency_p50_ms=None if p50 is None else round(p50, 4),
                       latency_p95_ms=None if p95 is None else round(p95, 4))
        for key in ("dropped", "reconnects", "camera_errors", "stalls"):
            summary.setdefault(key, 0)
        return summary

    @staticmethod
    def _fps(now: float, times: list[float]) -> float:
        recent = [t for t in times if now - t <= FPS_WINDOW_S]
        if len(recent) > 1 and recent[-1] > recent[0]:
            return round((len(recent) - 1) / (recent[-1] - recent[0]), 2)
        return 0.0

    def snapshot(self) -> dict[str, Any]:
        """``/status``: the live summary, the preview's own numbers, the last label event."""
        event = self.latest_event()[1]
        return {"summary": self.live_summary(), "preview": self.numbers(),
                "last": event.as_dict() if event is not None else None}

    def numbers(self) -> dict[str, Any]:
        """The preview's own numbers."""
        event = self.latest_event()[1]
        return {"clients": self.counters.viewers + self.counters.listeners,
                "encoded": self.encoded, "encode_errors": self.encode_errors,
                "encode_cpu_s": round(self.encode_cpu_s, 3),
                "fps": self._fps(time.monotonic(), list(self._times)),
                "latency_ms": round(event.latency_ms, 2) if event is not None else None,
                **{k: round(v, 3) if isinstance(v, float) else v
                   for k, v in asdict(self.counters).items()}}

    # --- the encoder thread -----------------------------------------------------------------

    def want_frame(self) -> None:
        """Ask for a JPEG of the newest frame (the server's tick, while someone watches)."""
        self._wanted.set()

    def _encode_loop(self) -> None:
        period = 1.0 / self.options.max_fps
        done = 0
        next_at = time.monotonic()
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return
            latest = self._latest
            if latest is None or latest[0] == done:  # one encoding per frame at most
                continue
            next_at = time.monotonic() + period
            done = latest[0]
            try:
                jpeg = self.encode(latest[1], latest[2])
            except Exception:  # a bad frame or event costs one picture, never the preview
                self.encode_errors += 1
                if self.encode_errors == 1:
                    log.warning("the preview could not draw a frame; skipping such frames",
                                exc_info=True)
                continue
            self._jpeg = jpeg
            self.encoded += 1
            self.encode_cpu_s = time.thread_time()

    def encode(self, rgb: np.ndarray, event: LabelEvent) -> bytes:
        """``rgb`` scaled to the preview's width, annotated with ``event``, as JPEG bytes."""
        fps = self._fps(time.monotonic(), list(self._times))
        bgr = annotate(fit_width(rgb, self.options.width), event, fps)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.options.quality])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError("OpenCV could not encode a JPEG")
        return data.tobytes()
