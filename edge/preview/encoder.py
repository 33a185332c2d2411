"""What the preview shows, kept off the inference thread.

:meth:`PreviewHub.observe` is called by the inference loop for every labelled frame and only
stores references (and hands the event to each event listener's bounded queue). A thread of its
own turns the newest frame into an annotated JPEG, only while at least one client watches the
stream, and at most ``max_fps`` times a second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from edge.events import LabelEvent
from edge.preview import PreviewOptions
from edge.preview.overlay import annotate, fit_width

log = logging.getLogger(__name__)

FPS_WINDOW_S = 2.0
LISTENER_BACKLOG = 256


class PreviewHub:
    """The latest frame and event, the latest JPEG, and the event listeners."""

    def __init__(self, options: PreviewOptions) -> None:
        self.options = options
        self.encoded = 0
        self.clients = 0
        self.events_dropped = 0
        self._cond = threading.Condition()
        self._frame: tuple[np.ndarray, LabelEvent] | None = None
        self._frame_seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._last: LabelEvent | None = None
        self._recent: deque[float] = deque(maxlen=1024)
        self._summary: dict[str, Any] = {}
        self._listeners: set[queue.Queue[LabelEvent]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="edge-preview",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # --- fed by the pipeline ----------------------------------------------------------------

    def observe(self, rgb: np.ndarray, event: LabelEvent) -> None:
        """One labelled frame (inference thread): store it, never wait."""
        with self._cond:
            self._last = event
            self._recent.append(time.monotonic())
            if self.clients:
                self._frame = (rgb, event)
                self._frame_seq += 1
                self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener.put_nowait(event)
            except queue.Full:
                self.events_dropped += 1

    def status(self, summary: Mapping[str, Any]) -> None:
        """The run's latest status numbers."""
        self._summary = dict(summary)

    # --- read by the server -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """``/status``: the last summary, the preview's own numbers, the last label event."""
        last = self._last
        return {"summary": self._summary, "preview": self.numbers(),
                "last": last.as_dict() if last is not None else None}

    def numbers(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = [t for t in list(self._recent) if now - t <= FPS_WINDOW_S]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and \
            recent[-1] > recent[0] else 0.0
        last = self._last
        return {"clients": self.clients, "encoded": self.encoded, "fps": round(fps, 2),
                "latency_ms": round(last.latency_ms, 2) if last is not None else None,
                "events_dropped": self.events_dropped}

    def watch(self) -> None:
        with self._cond:
            self.clients += 1

    def unwatch(self) -> None:
        with self._cond:
            self.clients -= 1

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The first JPEG newer than number ``after``, waiting up to ``timeout`` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._stop.is_set() or self._jpeg_seq > after, timeout)
            if self._jpeg_seq > after and self._jpeg is not None:
                return self._jpeg_seq, self._jpeg
        return None

    def listen(self) -> queue.Queue[LabelEvent]:
        listener: queue.Queue[LabelEvent] = queue.Queue(LISTENER_BACKLOG)
        with self._cond:
            self._listeners.add(listener)
        return listener

    def unlisten(self, listener: queue.Queue[LabelEvent]) -> None:
        with self._cond:
            self._listeners.discard(listener)

    # --- the encoder thread -----------------------------------------------------------------

    def _encode_loop(self) -> None:
        done = 0
        next_at = 0.0
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda done=done: self._stop.is_set() or (  # type: ignore[misc]
                    self.clients > 0 and self._frame_seq != done), 1.0)
                if self._stop.is_set() or not self.clients or self._frame_seq == done:
                    continue
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            with self._cond:  # the newest frame after the wait
                frame, done = self._frame, self._frame_seq
            if frame is None:
                continue
            next_at = time.monotonic() + 1.0 / self.options.max_fps
            jpeg = self._encode(*frame)
            with self._cond:
                self._jpeg, self._jpeg_seq = jpeg, self._jpeg_seq + 1
                self.encoded += 1
                self._cond.notify_all()

    def _encode(self, rgb: np.ndarray, event: LabelEvent) -> bytes:
        bgr = annotate(fit_width(rgb, self.options.width), event.predictions,
                       self.numbers()["fps"], event.latency_ms)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.options.quality])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError("OpenCV could not encode a JPEG")
        return data.tobytes()
